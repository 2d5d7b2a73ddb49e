import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from nodes.choices import BoardModel, BootMode
from nodes.models import DiscoveredBoard, Node, Site, Tenant

pytestmark = pytest.mark.django_db


def _counts():
    return (Site.objects.count(), Tenant.objects.count(), Node.objects.count(), DiscoveredBoard.objects.count())


def test_demo_is_idempotent_and_complete(capsys, settings, tmp_path):
    settings.PINET_DATA_DIR = tmp_path
    settings.PINET_IMAGE_ROOT, settings.PINET_NFS_ROOT = tmp_path / "images", tmp_path / "nfs"
    settings.PINET_IMPORT_RESERVE_BYTES = 0
    call_command("pinet_demo", "--password", "demo-pass-1")
    first = _counts()
    call_command("pinet_demo")
    assert _counts() == first
    site = Site.objects.get(slug="demo")
    assert (site.interface, site.subnet, site.boot_server) == ("pinet0", "192.0.2.0/24", "192.0.2.1")
    boards = DiscoveredBoard.objects.filter(site=site, status="new")
    models = set(Node.objects.values_list("board_model", flat=True)) | set(boards.values_list("board_model", flat=True))
    assert models == set(BoardModel.values)
    assert boards.get(board_model=BoardModel.PI5).seen_count == 3  # a second run recorded nothing more
    pi4_modes = set(Node.objects.filter(board_model=BoardModel.PI4B).values_list("boot_mode", flat=True))
    assert {BootMode.LOCAL, BootMode.NETBOOT} <= pi4_modes
    assert Node.objects.filter(tenant__slug="acme").exists() and Node.objects.filter(tenant__slug="birch").exists()
    admin = authenticate(username="admin", password="demo-pass-1")
    assert admin is not None and admin.is_staff
    assert authenticate(username="alice", password="demo-pass-1").tenant_memberships.get().tenant.slug == "acme"
    assert authenticate(username="bob", password="demo-pass-1").tenant_memberships.get().tenant.slug == "birch"
    out = capsys.readouterr().out
    assert "Password of admin, alice, bob: demo-pass-1" in out and "passwords are unchanged" in out


def test_demo_generates_and_prints_a_password_once(capsys, settings, tmp_path):
    settings.PINET_DATA_DIR = tmp_path
    call_command("pinet_demo")
    password = (tmp_path / "demo-password").read_text().strip()
    assert f"Password of admin, alice, bob: {password}" in capsys.readouterr().out
    assert (tmp_path / "demo-password").stat().st_mode & 0o077 == 0
    assert authenticate(username="bob", password=password) is not None


def test_demo_puts_a_pi4_into_a_running_install(settings, tmp_path):
    from images.demo import missing_tools
    from provisioning.models import InstallJob
    from tests.tools import need

    need(not missing_tools(), f"the demo image needs: {' '.join(missing_tools())}")
    settings.PINET_DATA_DIR = tmp_path
    settings.PINET_IMAGE_ROOT, settings.PINET_NFS_ROOT = tmp_path / "images", tmp_path / "nfs"
    settings.PINET_IMPORT_RESERVE_BYTES = 0
    call_command("pinet_demo", "--password", "demo-pass-1")
    call_command("pinet_demo")
    job = InstallJob.objects.get()
    assert (job.node.hostname, job.node.boot_mode, job.status, job.percent) == ("pi4-05", "install", "running", 45)
    assert job.image.name == "demo-raspios" and job.image.state == "ready"
