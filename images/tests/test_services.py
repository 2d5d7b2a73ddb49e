import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from images.choices import IMAGE_TRANSITIONS, ImageState
from images.models import OSImage
from images.services import image_create, image_transition
from pinet.lifecycle import InvalidTransition

pytestmark = pytest.mark.django_db


def test_reimport_under_the_same_name_makes_a_new_version():
    first = image_create(by=None, name="raspios", arch="arm64", source="/srv/a.img.xz")
    second = image_create(by=None, name="raspios", arch="arm64", source="/srv/b.img.xz")
    assert (first.version, second.version) == (1, 2)


def test_bad_values_are_rejected_with_field_messages():
    with pytest.raises(ValidationError) as info:
        image_create(by=None, name="x", arch="sparc", source="/x", sha256="abc")
    assert set(info.value.message_dict) == {"arch", "sha256"}


def test_database_rejects_bad_checksum_and_arch():
    with pytest.raises(IntegrityError), transaction.atomic():
        OSImage.objects.create(name="x", arch="arm64", source="/x", sha256="XYZ")
    with pytest.raises(IntegrityError), transaction.atomic():
        OSImage.objects.create(name="x", arch="mips", source="/x")


def test_table_covers_every_state():
    assert set(IMAGE_TRANSITIONS) == set(ImageState.values)


@pytest.mark.parametrize("start", ImageState.values)
@pytest.mark.parametrize("to", ImageState.values)
def test_every_pair_follows_the_table(start, to):
    image = OSImage.objects.create(name="x", arch="arm64", source="/x", state=start)
    if to in IMAGE_TRANSITIONS[start]:
        image_transition(image=image, to=to)
        assert OSImage.objects.get(pk=image.pk).state == to
    else:
        with pytest.raises(InvalidTransition):
            image_transition(image=image, to=to)
        assert OSImage.objects.get(pk=image.pk).state == start


def test_percent():
    image = OSImage(name="x", arch="arm64", source="/x", bytes_done=50, bytes_total=200)
    assert image.percent == 25
    image.state = ImageState.READY
    assert image.percent == 100
