"""A pinet site served inside a NetLab: pinet's rendered dnsmasq under a restart loop and a
real pinet web server (and worker) in the server namespace, sharing the test database."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

from provisioning.services import site_config_apply
from tests.tools import database_url, need

WEB = "http://192.0.2.1:8000"


def start_dnsmasq(lab, site) -> subprocess.Popen:
    """Apply the site and run its dnsmasq; the loop plays systemd's Restart=always, since pinet
    restarts dnsmasq by ending it."""
    result = site_config_apply(site=site)
    assert result.status == "applied", result.summary()
    conf = Path(settings.PINET_CONFIG_ROOT) / site.slug / "dnsmasq" / "dnsmasq.conf"
    loop = f"while :; do dnsmasq -k --log-facility=- -C {conf}; sleep 0.05; done"
    proc = lab.start_daemon(lab.server_ns, ["sh", "-c", loop], lab.path("dnsmasq.log"))
    lab.wait_for_text(lab.path("dnsmasq.log"), "sockets bound exclusively", proc=proc)
    return proc


def server_env(data: Path) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "pinet.settings",
        "PINET_ENV": "embedded",
        "DATABASE_URL": database_url(from_namespace=True),
        "PINET_DATA_DIR": str(data),
        "PINET_BOOT_URL_BASE": WEB,
        # The token in option 224 is derived from the secret key: the server must share it.
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "192.0.2.1",
        "PINET_CONFIG_ROOT": str(settings.PINET_CONFIG_ROOT),
        "PINET_TFTP_ROOT": str(settings.PINET_TFTP_ROOT),
        # Web server and worker share the lab's own file-system broker, whatever CI configured.
        "CELERY_BROKER_URL": "",
    }


def start_web(lab, data: Path) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    need(gunicorn.exists(), "gunicorn is not installed in this virtualenv")
    log = lab.path("gunicorn.log")
    argv = [gunicorn, "pinet.wsgi", "-b", "192.0.2.1:8000", "-w", "2", "--chdir", str(settings.BASE_DIR)]
    proc = lab.start_daemon(lab.server_ns, argv, log, env=server_env(data))
    deadline = time.monotonic() + 30
    while (
        lab.run_in(
            lab.server_ns, ["busybox", "wget", "-q", "-O", "/dev/null", f"{WEB}/healthz"], capture_output=True
        ).returncode
        != 0
    ):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)
    return proc


def start_worker(lab, data: Path, queues: str) -> subprocess.Popen:
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "pinet",
        "worker",
        "-Q",
        queues,
        "--pool",
        "solo",
        "-l",
        "info",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    return lab.start_daemon(lab.server_ns, argv, lab.path("worker.log"), env=server_env(data))


def installable_image(data: Path, raw: bytes, *, name: str, arch: str):
    """A ready OS image whose install artefact is ``raw`` compressed with zstd, as an import makes it."""
    import hashlib

    from images.models import OSImage

    disk = data / "images" / f"{name}.img"
    disk.parent.mkdir(parents=True, exist_ok=True)
    disk.write_bytes(raw)
    artefact = disk.with_name(disk.name + ".zst")
    subprocess.run(["zstd", "-q", "-f", str(disk), "-o", str(artefact)], check=True)
    return OSImage.objects.create(
        name=name,
        arch=arch,
        source="/x",
        state="ready",
        artefact_path=str(artefact),
        artefact_sha256=hashlib.sha256(artefact.read_bytes()).hexdigest(),
        artefact_size=artefact.stat().st_size,
        image_size=len(raw),
    )
