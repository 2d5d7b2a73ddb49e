from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from .choices import Arch, ImageFormat, ImageKind, ImageState

SHA256_RE = r"^[0-9a-f]{64}$"
# Image names become directory names under the image store and the NFS root.
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
validate_image_name = RegexValidator(
    NAME_RE,
    "Use letters, digits, '.', '_' and '-' (it becomes a directory name), e.g. raspios-lite.",
    code="invalid_image_name",
)
validate_sha256 = RegexValidator(SHA256_RE, "A sha256 checksum is 64 lower-case hex digits.", code="invalid_sha256")


class OSImageQuerySet(models.QuerySet):
    def visible_to(self, user) -> "OSImageQuerySet":
        """Operators see every image; customers see the ready OS images they may install."""
        if not (user and user.is_authenticated and user.is_active):
            return self.none()
        if user.is_staff:
            return self
        return self.filter(state=ImageState.READY, kind=ImageKind.OS)


class OSImage(models.Model):
    """One imported version of an OS image (or installer): its source, checksum, NFS root
    tree, boot files and the raw artefact written to SD cards."""

    name = models.CharField(max_length=100, validators=[validate_image_name])
    version = models.PositiveIntegerField(default=1, help_text="Re-importing a name makes a new version.")
    arch = models.CharField(max_length=8, choices=Arch.choices)
    kind = models.CharField(max_length=16, choices=ImageKind.choices, default=ImageKind.OS)
    source = models.CharField(max_length=2000, help_text="URL, server path or uploaded file name.")
    format = models.CharField(max_length=8, choices=ImageFormat.choices, blank=True)
    sha256 = models.CharField("expected sha256", max_length=64, blank=True, validators=[validate_sha256])
    source_size = models.BigIntegerField(null=True, blank=True, help_text="Bytes as fetched.")
    image_size = models.BigIntegerField(null=True, blank=True, help_text="Bytes of the raw disk image.")
    state = models.CharField(max_length=16, choices=ImageState.choices, default=ImageState.PENDING)
    stage = models.CharField(max_length=32, blank=True)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Import runs started (a killed worker retries).")
    root_path = models.CharField(max_length=1000, blank=True, help_text="Exported NFS root tree.")
    boot_path = models.CharField(max_length=1000, blank=True, help_text="Boot (FAT) files.")
    artefact_path = models.CharField(max_length=1000, blank=True, help_text="Compressed raw image for installs.")
    artefact_sha256 = models.CharField(max_length=64, blank=True, validators=[validate_sha256])
    artefact_size = models.BigIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = OSImageQuerySet.as_manager()

    class Meta:
        verbose_name = "OS image"
        ordering = ["name", "-version", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "version"],
                name="images_osimage_unique_version",
                violation_error_message="That version of this image already exists.",
            ),
            models.CheckConstraint(condition=Q(arch__in=Arch.values), name="images_osimage_arch_valid"),
            models.CheckConstraint(condition=Q(name__regex=NAME_RE), name="images_osimage_name_format"),
            models.CheckConstraint(condition=Q(kind__in=ImageKind.values), name="images_osimage_kind_valid"),
            models.CheckConstraint(condition=Q(state__in=ImageState.values), name="images_osimage_state_valid"),
            models.CheckConstraint(
                condition=Q(format="") | Q(format__in=ImageFormat.values), name="images_osimage_format_valid"
            ),
            models.CheckConstraint(
                condition=Q(sha256="") | Q(sha256__regex=SHA256_RE), name="images_osimage_sha256_format"
            ),
            models.CheckConstraint(
                condition=Q(artefact_sha256="") | Q(artefact_sha256__regex=SHA256_RE),
                name="images_osimage_artefact_sha256_format",
            ),
            models.CheckConstraint(
                condition=Q(bytes_done__gte=0, bytes_total__gte=0), name="images_osimage_progress_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({self.arch})"

    @property
    def percent(self) -> int:
        if self.state == ImageState.READY:
            return 100
        if not self.bytes_total:
            return 0
        return min(100, int(self.bytes_done * 100 / self.bytes_total))
