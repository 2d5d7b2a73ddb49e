import pytest
from django.urls import reverse

from images.models import OSImage

pytestmark = pytest.mark.django_db


def test_operator_imports_by_url_and_sees_progress(client, operator, django_capture_on_commit_callbacks):
    client.force_login(operator)
    assert client.get(reverse("images-page")).status_code == 200
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("images-import"),
            {"name": "raspios", "arch": "arm64", "source": "https://images.example/raspios.img.xz"},
        )
    assert response.status_code == 302 and len(callbacks) == 1
    image = OSImage.objects.get()
    assert (image.state, image.source) == ("pending", "https://images.example/raspios.img.xz")
    rows = client.get(reverse("images-rows"))
    assert rows.status_code == 200 and "raspios" in rows.content.decode()


def test_bad_import_says_what_to_fix(client, operator):
    client.force_login(operator)
    response = client.post(
        reverse("images-import"), {"name": "bad name!", "arch": "arm64", "source": "/x.img"}, follow=True
    )
    assert "it becomes a directory name" in response.content.decode() and not OSImage.objects.exists()
    response = client.post(reverse("images-import"), {"name": "x", "arch": "arm64"}, follow=True)
    assert "Give either a URL" in response.content.decode()


def test_rows_stop_polling_when_nothing_imports(client, operator):
    client.force_login(operator)
    OSImage.objects.create(name="done", arch="arm64", source="/x", state="ready")
    assert client.get(reverse("images-rows")).status_code == 286


def test_customers_are_kept_out(client, customer):
    client.force_login(customer)
    assert client.get(reverse("images-page")).status_code == 302
    assert client.post(reverse("images-import"), {"name": "x", "arch": "arm64", "source": "/x"}).status_code == 302
    assert not OSImage.objects.exists()
