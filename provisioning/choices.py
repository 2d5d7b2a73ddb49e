from django.db import models
from django.utils.translation import gettext_lazy as _


class InstallJobStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


_S = InstallJobStatus
ACTIVE = frozenset({_S.PENDING, _S.RUNNING})
FINISHED = frozenset({_S.SUCCEEDED, _S.FAILED, _S.CANCELLED})
INSTALL_JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    _S.PENDING: frozenset({_S.RUNNING, _S.FAILED, _S.CANCELLED}),
    _S.RUNNING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.CANCELLED}),
    _S.SUCCEEDED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELLED: frozenset(),
}


class EventSource(models.TextChoices):
    NODE = "node", _("Node")
    PINET = "pinet", _("pinet")


class RevisionStatus(models.TextChoices):
    APPLIED = "applied", _("Applied")
    REJECTED = "rejected", _("Rejected")
