"""Writes for install jobs, boot tokens and worker checks."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from images.choices import ImageState
from nodes.models import Node
from nodes.services import audit_log_write, validated_save
from pinet.lifecycle import transition

from .choices import FINISHED, INSTALL_JOB_TRANSITIONS, InstallJobStatus
from .models import BootToken, InstallJob, WorkerCheck

DEFAULT_TOKEN_LIFETIME = timedelta(hours=2)


@transaction.atomic
def install_job_create(*, node: Node, image, by: AbstractBaseUser | None) -> InstallJob:
    """Open a pending install job; at most one active job per node (a database rule)."""
    if image.state != ImageState.READY:
        raise ValidationError({"image": f"{image} is not ready to install (it is {image.state})."})
    job = InstallJob(node=node, image=image, requested_by=by)
    validated_save(job)
    audit_log_write(actor=by, action="install_job.create", obj=job, data={"node": node.hostname, "image": str(image)})
    return job


@transaction.atomic
def install_job_transition(
    *, job: InstallJob, to: str, by: AbstractBaseUser | None = None, error: str = ""
) -> InstallJob:
    """Move a job through INSTALL_JOB_TRANSITIONS, compare-and-swap; ending it revokes its tokens."""
    before = job.status
    now = timezone.now()
    changes: dict = {"error": error} if error else {}
    if to == InstallJobStatus.RUNNING:
        changes["started_at"] = now
    if to in FINISHED:
        changes["finished_at"] = now
    transition(obj=job, table=INSTALL_JOB_TRANSITIONS, to=to, **changes)
    if to in FINISHED:
        job.boot_tokens.filter(revoked_at__isnull=True).update(revoked_at=now)
    audit_log_write(actor=by, action="install_job.status", obj=job, data={"from": before, "to": to, "error": error})
    return job


def boot_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def boot_token_issue(*, job: InstallJob, lifetime: timedelta = DEFAULT_TOKEN_LIFETIME) -> tuple[str, BootToken]:
    """Mint the job's boot token (256 bits); returns the token, which is never stored."""
    now = timezone.now()
    job.boot_tokens.filter(revoked_at__isnull=True).update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    row = BootToken.objects.create(job=job, token_hash=boot_token_hash(token), expires_at=now + lifetime)
    return token, row


def worker_check_request(*, queue: str, by: AbstractBaseUser | None) -> WorkerCheck:
    """Send a round trip through ``queue``; a worker consuming it answers (see WorkerCheck)."""
    from .tasks import answer_worker_check_task

    with transaction.atomic():
        check = WorkerCheck.objects.create(queue=queue, requested_by=by)
        transaction.on_commit(lambda: answer_worker_check_task.apply_async((check.pk,), queue=queue))
    return check


def worker_check_answer(*, check_id: int) -> bool:
    """Record that this worker process received the check; False if it was already answered."""
    answered = WorkerCheck.objects.filter(pk=check_id, answered_at__isnull=True).update(
        answered_at=timezone.now(), answered_by=f"{socket.gethostname()}:{os.getpid()}"
    )
    return answered == 1
