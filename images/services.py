"""Writes for OS images. The import pipeline itself arrives with issue [3/8]."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max

from nodes.services import audit_log_write, validated_save
from pinet.lifecycle import transition

from .choices import IMAGE_TRANSITIONS
from .models import OSImage


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
    return image
