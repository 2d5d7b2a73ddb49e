"""System checks catch deployment mistakes (pinet.* ids)."""

import os

from django.core import checks

from images.checks import check_import_tools
from pinet.checks import check_boot_url, check_data_directories
from provisioning.checks import check_daemon_binaries


def _ids(messages):
    return sorted(m.id for m in messages)


def test_missing_and_unwritable_directories(settings, tmp_path):
    readonly = tmp_path / "ro"
    readonly.mkdir(mode=0o500)
    settings.PINET_DIRECTORIES = {"PINET_TFTP_ROOT": tmp_path / "absent", "PINET_NFS_ROOT": readonly}
    messages = check_data_directories()
    assert _ids(messages) == (["pinet.E001"] if os.geteuid() == 0 else ["pinet.E001", "pinet.E002"])
    assert "mkdir -p" in messages[0].hint


def test_present_directories_pass(settings, tmp_path):
    settings.PINET_DIRECTORIES = {"PINET_TFTP_ROOT": tmp_path}
    assert check_data_directories() == []


def test_missing_binaries_are_reported(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: None)
    assert _ids(check_daemon_binaries()) == ["pinet.provisioning.W001", "pinet.provisioning.W002"]
    (warning,) = check_import_tools()
    assert warning.id == "pinet.images.W001" and "apt-get install" in warning.hint


def test_plain_http_boot_url_warns_on_deploy(settings):
    settings.PINET_BOOT_URL_BASE = "http://pinet.example"
    assert _ids(check_boot_url()) == ["pinet.W003"]
    settings.PINET_BOOT_URL_BASE = "https://pinet.example"
    assert check_boot_url() == []


def test_checks_are_registered():
    registered = {c.__name__ for c in checks.registry.registry.get_checks(include_deployment_checks=True)}
    assert {"check_data_directories", "check_daemon_binaries", "check_import_tools", "check_boot_url"} <= registered
