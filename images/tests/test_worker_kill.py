"""A worker killed with SIGKILL mid-import: the next worker retries it and it ends ready."""

from __future__ import annotations

import signal
import time

import pytest
from django.db import transaction

from images.choices import ImageState
from images.models import OSImage
from images.services import image_create, image_import_request
from provisioning.tests.test_worker import _filesystem_broker, broker, worker_process

from .imagebuilder import build_image, compress, require_tools

pytestmark = pytest.mark.django_db(transaction=True)


def _wait(image_id, predicate, proc, log, limit=120.0) -> OSImage:
    deadline = time.monotonic() + limit
    while True:
        image = OSImage.objects.get(pk=image_id)
        if predicate(image):
            return image
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{image.state} {image.stage}\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def test_sigkilled_worker_does_not_leave_the_image_importing(tmp_path, settings):
    require_tools()
    data = tmp_path / "data"
    settings.PINET_IMAGE_ROOT, settings.PINET_NFS_ROOT = data / "images", data / "nfs"
    src = tmp_path / "src"
    src.mkdir()
    # Big enough (≈200 MB of incompressible data) that each stage takes a moment to kill.
    source = compress(build_image(src, root_mib=260, payload=200 * 2**20), "img.zst")
    env = {"PINET_IMPORT_STALE_SECONDS": "2", "PINET_IMPORT_RESERVE_BYTES": "0"}
    options = _filesystem_broker(tmp_path)
    with broker("filesystem://localhost/", options):
        with transaction.atomic():
            image = image_create(by=None, name="raspios", arch="arm64", source=str(source))
            image_import_request(image=image)
        with worker_process(tmp_path, env, queue="images") as (proc, log):
            busy = _wait(
                image.pk, lambda i: i.state == ImageState.IMPORTING and i.stage not in ("", "starting"), proc, log
            )
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        killed_in = busy.stage
        assert OSImage.objects.get(pk=image.pk).state == ImageState.IMPORTING
        time.sleep(2.5)  # past PINET_IMPORT_STALE_SECONDS without progress
        with worker_process(tmp_path / "second", {**env, "PINET_DATA_DIR": str(data)}, queue="images") as (proc, log):
            done = _wait(image.pk, lambda i: i.state in (ImageState.READY, ImageState.FAILED), proc, log)
    assert done.state == ImageState.READY, (killed_in, done.error)
    assert done.attempts == 2
    assert not any((data / "images" / ".staging").glob("*")) and not any((data / "nfs" / ".staging").glob("*"))
