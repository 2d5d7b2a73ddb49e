import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from provisioning.choices import InstallJobStatus
from provisioning.models import BootToken, InstallJob
from provisioning.services import boot_token_hash, boot_token_issue, install_job_create, install_job_transition
from tests.factories import make_image, make_node

pytestmark = pytest.mark.django_db


@pytest.fixture
def node(site):
    return make_node(site=site, n=1)


@pytest.fixture
def image():
    return make_image(state="ready")


def test_second_active_job_is_rejected_by_the_database(node, image):
    InstallJob.objects.create(node=node, image=image)
    with pytest.raises(IntegrityError, match="one_active_per_node|UNIQUE"), transaction.atomic():
        InstallJob.objects.create(node=node, image=image, status=InstallJobStatus.RUNNING)


def test_second_active_job_message_from_the_service(node, image):
    install_job_create(node=node, image=image, by=None)
    with pytest.raises(ValidationError, match="already has an install job in progress"):
        install_job_create(node=node, image=image, by=None)
    assert InstallJob.objects.count() == 1


def test_a_new_job_may_follow_a_finished_one(node, image):
    job = install_job_create(node=node, image=image, by=None)
    install_job_transition(job=job, to=InstallJobStatus.CANCELLED)
    install_job_create(node=node, image=image, by=None)
    assert InstallJob.objects.count() == 2


def test_job_needs_a_ready_image(node):
    with pytest.raises(ValidationError, match="not ready to install"):
        install_job_create(node=node, image=make_image(), by=None)


def test_percent_above_100_is_rejected(node, image):
    with pytest.raises(IntegrityError), transaction.atomic():
        InstallJob.objects.create(node=node, image=image, percent=101)


def test_boot_token_is_stored_only_as_a_hash(node, image):
    job = install_job_create(node=node, image=image, by=None)
    token, row = boot_token_issue(job=job)
    assert len(token) >= 43  # 32 random bytes, base64url
    assert row.token_hash == boot_token_hash(token) and token not in row.token_hash
    assert not BootToken.objects.filter(token_hash=token).exists()


def test_reissuing_revokes_the_previous_token(node, image):
    job = install_job_create(node=node, image=image, by=None)
    _first, first_row = boot_token_issue(job=job)
    boot_token_issue(job=job)
    first_row.refresh_from_db()
    assert first_row.revoked_at is not None
    assert BootToken.objects.filter(job=job, revoked_at__isnull=True).count() == 1


def test_malformed_token_hash_is_rejected(node, image):
    job = install_job_create(node=node, image=image, by=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        BootToken.objects.create(job=job, token_hash="plaintext-token", expires_at=job.created)


def test_race_for_the_active_job_is_translated(node, image, monkeypatch):
    # Both requests passed validation; the database decides, and says why in words.
    InstallJob.objects.create(node=node, image=image)
    monkeypatch.setattr(InstallJob, "full_clean", lambda self: None)
    with pytest.raises(ValidationError, match="already has an install job in progress"):
        install_job_create(node=node, image=image, by=None)
