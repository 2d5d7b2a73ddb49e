"""Writes for OS images: registering a version, running, cancelling and recovering imports."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from nodes.services import actor_label, audit_log_write, validated_save
from pinet.lifecycle import InvalidTransition, transition

from . import importer
from .choices import IMAGE_TRANSITIONS, ImageState
from .models import OSImage

log = logging.getLogger(__name__)


@transaction.atomic
def image_create(*, by: AbstractBaseUser | None, name: str, arch: str, source: str, **fields) -> OSImage:
    """Register a new version of an image under ``name``, in state pending."""
    # Lock the existing versions so two uploads under one name get different numbers.
    latest = OSImage.objects.select_for_update().filter(name=name).aggregate(v=Max("version"))["v"] or 0
    image = OSImage(name=name, arch=arch, source=source, version=latest + 1, **fields)
    validated_save(image)
    audit_log_write(actor=by, action="image.create", obj=image, data={"source": source, "arch": arch})
    return image


@transaction.atomic
def image_transition(*, image: OSImage, to: str, by: AbstractBaseUser | None = None, **changes) -> OSImage:
    """Move an image through IMAGE_TRANSITIONS, compare-and-swap."""
    before = image.state
    transition(obj=image, table=IMAGE_TRANSITIONS, to=to, field="state", **changes)
    audit_log_write(actor=by, action="image.state", obj=image, data={"from": before, "to": to})
    if to in (ImageState.READY, ImageState.FAILED):
        from nodes.webhooks import webhook_emit

        webhook_emit(
            event=f"image.{to}",
            data={
                "image": {
                    "id": image.pk,
                    "name": image.name,
                    "version": image.version,
                    "arch": image.arch,
                    "error": image.error,
                }
            },
        )
    return image


def image_create_from_upload(*, by: AbstractBaseUser | None, name: str, arch: str, upload, sha256: str = "") -> OSImage:
    """Register an uploaded image (a Django UploadedFile or any file object) and queue its
    import. The upload is copied to the image store in chunks, never held in memory."""
    uploads = Path(settings.PINET_IMAGE_ROOT) / ".uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    original = Path(getattr(upload, "name", "upload")).name or "upload"
    fd, path = tempfile.mkstemp(dir=uploads, prefix="upload-", suffix="-" + re.sub(r"[^A-Za-z0-9._-]", "_", original))
    try:
        with os.fdopen(fd, "wb") as out:
            chunks = upload.chunks() if hasattr(upload, "chunks") else iter(lambda: upload.read(1 << 20), b"")
            for chunk in chunks:
                out.write(chunk)
        with transaction.atomic():
            image = image_create(by=by, name=name, arch=arch, source=path, sha256=sha256)
            image_import_request(image=image)
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise
    return image


def image_import_request(*, image: OSImage) -> None:
    """Queue the import on the `images` queue once the current transaction commits."""
    from .tasks import import_image_task

    image_id = image.pk
    transaction.on_commit(lambda: import_image_task.apply_async((image_id,), queue="images"))


def image_import_run(*, image_id: int, echo: Callable[[OSImage], None] | None = None) -> OSImage:
    """Run the import of a pending image here and now; idempotent (a ready or failed image is
    left alone, a redelivered one starts over). Ends in ready or failed, never importing."""
    image = OSImage.objects.get(pk=image_id)
    if image.state == ImageState.IMPORTING:
        return image  # someone is on it; a stale one is recovered by image_recover_stale
    if image.state != ImageState.PENDING:
        return image
    if image.attempts >= settings.PINET_IMPORT_MAX_ATTEMPTS:
        image_transition(image=image, to=ImageState.FAILED, error=f"Gave up after {image.attempts} attempts.")
        return image
    try:
        image_transition(
            image=image,
            to=ImageState.IMPORTING,
            attempts=image.attempts + 1,
            error="",
            stage="starting",
            bytes_done=0,
            bytes_total=0,
        )
    except InvalidTransition:
        return OSImage.objects.get(pk=image_id)  # another worker took it
    progress = importer.Progress(image, echo=echo)
    try:
        return _run_pipeline(image, progress)
    finally:
        _discard_upload(image)


def _discard_upload(image: OSImage) -> None:
    # An upload is pinet's own copy; the artefact and trees replace it once the import ends.
    uploads = Path(settings.PINET_IMAGE_ROOT) / ".uploads"
    if Path(image.source).parent == uploads:
        Path(image.source).unlink(missing_ok=True)


def _run_pipeline(image: OSImage, progress: importer.Progress) -> OSImage:
    image_id = image.pk
    try:
        fields = importer.run(image, progress)
    except importer.ImportCancelled:
        importer.remove_staging(image)
        return OSImage.objects.get(pk=image_id)
    except importer.ImportFailed as exc:
        return _fail(image, str(exc))
    except Exception as exc:  # a bug or an OS error: still never leave the row importing
        log.exception("image %s import crashed", image_id)
        return _fail(image, f"Internal error during '{image.stage}': {exc}")
    try:
        image_transition(image=image, to=ImageState.READY, stage="ready", bytes_done=image.bytes_total, **fields)
    except InvalidTransition:
        return OSImage.objects.get(pk=image_id)
    return image


def _fail(image: OSImage, reason: str) -> OSImage:
    importer.remove_staging(image)
    try:
        image_transition(image=image, to=ImageState.FAILED, error=reason)
    except InvalidTransition:
        pass  # cancelled meanwhile: that state stands
    return OSImage.objects.get(pk=image.pk)


@transaction.atomic
def image_import_cancel(*, image: OSImage, by: AbstractBaseUser | None) -> OSImage:
    """Stop an import; a running pipeline notices within a second and cleans up."""
    if image.state not in (ImageState.PENDING, ImageState.IMPORTING):
        raise ValidationError(f"{image} is {image.state}; only pending or importing images can be cancelled.")
    return image_transition(image=image, to=ImageState.FAILED, by=by, error=f"Cancelled by {actor_label(by)}.")


def image_recover_stale() -> list[int]:
    """Imports whose worker died (no progress for PINET_IMPORT_STALE_SECONDS) go back to
    pending and are queued again, or fail after PINET_IMPORT_MAX_ATTEMPTS attempts."""
    cutoff = timezone.now() - timedelta(seconds=settings.PINET_IMPORT_STALE_SECONDS)
    recovered = []
    for image in OSImage.objects.filter(state=ImageState.IMPORTING, updated__lt=cutoff):
        try:
            with transaction.atomic():
                if image.attempts >= settings.PINET_IMPORT_MAX_ATTEMPTS:
                    image_transition(
                        image=image,
                        to=ImageState.FAILED,
                        error=f"The worker importing it stopped {image.attempts} times; giving up.",
                    )
                    importer.remove_staging(image)
                else:
                    image_transition(image=image, to=ImageState.PENDING, stage="retrying after a worker stopped")
                    image_import_request(image=image)
                recovered.append(image.pk)
        except InvalidTransition:
            continue
    return recovered
