from django.conf import settings
from django.db import models
from django.db.models import Q

from nodes.choices import DhcpBackend
from nodes.models import tenant_scoped

from .choices import ACTIVE, EventSource, InstallJobStatus, RevisionStatus


class InstallJobQuerySet(models.QuerySet):
    def visible_to(self, user) -> "InstallJobQuerySet":
        scoped = tenant_scoped(self, user, "tenant")
        if scoped is self:
            return scoped  # an operator: everything
        # A job stays with the tenant it was for (its history goes nowhere else), but a running
        # one only while the board is still that tenant's: a former tenant can no longer see
        # or cancel what runs on a board now rented to someone else.
        return scoped.filter(Q(node__tenant_id=models.F("tenant_id")) | ~Q(status__in=sorted(ACTIVE)))


class InstallJob(models.Model):
    """One install of an image onto a node's SD card or disk. The row is the truth; status
    changes only through services.install_job_transition."""

    node = models.ForeignKey("nodes.Node", on_delete=models.CASCADE, related_name="install_jobs")
    image = models.ForeignKey("images.OSImage", on_delete=models.PROTECT, related_name="install_jobs")
    status = models.CharField(max_length=16, choices=InstallJobStatus.choices, default=InstallJobStatus.PENDING)
    stage = models.CharField(max_length=64, blank=True)
    percent = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="install_jobs"
    )
    celery_task_id = models.CharField(max_length=64, blank=True, help_text="For reference only.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True, help_text="Fails if no progress by then.")
    # The tenant the board belonged to when the job was asked for: the job's history stays
    # that tenant's even after the board is released and assigned to another.
    tenant = models.ForeignKey(
        "nodes.Tenant", on_delete=models.SET_NULL, null=True, blank=True, related_name="install_jobs"
    )
    artefact_served = models.BooleanField(
        default=False, help_text="The whole image has been sent to the board; only then may it report done."
    )
    previous_boot_mode = models.CharField(
        max_length=16, blank=True, help_text="What the node booted before; it returns to it if the job fails."
    )

    objects = InstallJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["node"],
                condition=Q(status__in=sorted(ACTIVE)),
                name="provisioning_installjob_one_active_per_node",
                violation_error_message="This node already has an install job in progress.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=InstallJobStatus.values), name="provisioning_installjob_status_valid"
            ),
            models.CheckConstraint(condition=Q(percent__lte=100), name="provisioning_installjob_percent_range"),
        ]

    def __str__(self) -> str:
        return f"Install {self.image} on {self.node} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE


class BootToken(models.Model):
    """The credential an installer presents to pinet. Only its sha256 is stored."""

    job = models.ForeignKey(InstallJob, on_delete=models.CASCADE, related_name="boot_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    # The token is HMAC(SECRET_KEY, job and nonce): the DHCP configuration can be rendered
    # again at any time without the token ever being stored.
    nonce = models.CharField(max_length=64, default="", editable=False)
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True, help_text="When the installer first presented it.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(token_hash__regex=r"^[0-9a-f]{64}$"),  # noqa: S106 (a pattern, not a password)
                name="provisioning_boottoken_hash_format",
            ),
            models.UniqueConstraint(
                fields=["job"],
                condition=Q(revoked_at__isnull=True),
                name="provisioning_boottoken_one_live_per_job",
            ),
        ]

    def __str__(self) -> str:
        return f"Boot token {self.token_hash[:8]}… for job {self.job_id}"


class JobEvent(models.Model):
    """A progress report from a node's installer, or a note pinet adds to the job's timeline."""

    job = models.ForeignKey(InstallJob, on_delete=models.CASCADE, related_name="events")
    created = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=8, choices=EventSource.choices, default=EventSource.NODE)
    stage = models.CharField(max_length=64)
    percent = models.PositiveSmallIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["created", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(percent__isnull=True) | Q(percent__lte=100), name="provisioning_jobevent_percent_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stage} {self.percent if self.percent is not None else ''}"


class ConfigRevision(models.Model):
    """A rendered DHCP/TFTP/NFS configuration for a site: applied, or rejected by the daemon's
    own validator (then the last applied one stays live)."""

    site = models.ForeignKey("nodes.Site", on_delete=models.CASCADE, related_name="config_revisions")
    backend = models.CharField(max_length=16, choices=DhcpBackend.choices)
    sha256 = models.CharField(max_length=64)
    content = models.TextField()
    status = models.CharField(max_length=16, choices=RevisionStatus.choices)
    validator_output = models.TextField(blank=True)
    diff = models.TextField(blank=True, help_text="Unified diff against the previous applied revision.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=RevisionStatus.values), name="provisioning_configrevision_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(backend__in=DhcpBackend.values), name="provisioning_configrevision_backend_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.site} {self.backend} {self.sha256[:12]} ({self.status})"


class WorkerCheck(models.Model):
    """A round trip through a queue: proves a worker is consuming it (dashboard "check worker")."""

    queue = models.CharField(max_length=64, default="default")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.CharField(max_length=200, blank=True, help_text="Worker host name and process id.")

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"Worker check on {self.queue} ({'answered' if self.answered_at else 'waiting'})"
