from django.db import models
from django.utils.translation import gettext_lazy as _


class Arch(models.TextChoices):
    ARMHF = "armhf", _("32-bit ARM (armhf)")
    ARM64 = "arm64", _("64-bit ARM (arm64)")
    AMD64 = "amd64", _("x86-64 (amd64)")


class ImageKind(models.TextChoices):
    OS = "os", _("Operating system")
    INSTALLER = "installer", _("Installer")


class ImageFormat(models.TextChoices):
    IMG = "img", _("Raw disk image (.img)")
    IMG_XZ = "img.xz", _("xz-compressed image (.img.xz)")
    IMG_GZ = "img.gz", _("gzip-compressed image (.img.gz)")
    IMG_ZST = "img.zst", _("zstd-compressed image (.img.zst)")
    ZIP = "zip", _("Zip holding one image (.zip)")
    TAR = "tar", _("Boot + root tarballs")


class ImageState(models.TextChoices):
    PENDING = "pending", _("Pending")
    IMPORTING = "importing", _("Importing")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")


_S = ImageState
IMAGE_TRANSITIONS: dict[str, frozenset[str]] = {
    _S.PENDING: frozenset({_S.IMPORTING, _S.FAILED}),
    # importing -> pending: a worker died mid-import and the import is retried.
    _S.IMPORTING: frozenset({_S.READY, _S.FAILED, _S.PENDING}),
    _S.READY: frozenset(),
    _S.FAILED: frozenset({_S.PENDING}),
}
