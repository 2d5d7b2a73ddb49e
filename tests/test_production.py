"""The production recipe from the README works: gunicorn serving pinet with PINET_ENV=production."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from tests.tools import database_url, need

pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_serves_pinet_in_production_mode(tmp_path: Path):
    gunicorn = Path(sys.executable).with_name("gunicorn")
    need(gunicorn.exists(), "gunicorn is not installed in this virtualenv (pip install -r requirements.txt)")
    data = tmp_path / "data"
    for sub in ("", "tftp", "nfs", "images", "config"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pinet.settings",
        "PINET_ENV": "production",
        "SECRET_KEY": "a-test-only-secret-key-that-is-long-enough-for-django-checks",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        "PINET_DATA_DIR": str(data),
        "PINET_BOOT_URL_BASE": "https://pinet.example",
    }
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen(
        [str(gunicorn), "pinet.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--access-logfile", "-"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    assert response.status == 200 and b'"ok"' in response.read()
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5) as response:
            assert response.status == 200 and b"Log in to pinet" in response.read()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
