"""Build pinet's installer (kernel + initramfs with busybox, zstd and the agent)."""

from __future__ import annotations

import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from images.models import OSImage
from provisioning import installer


class Command(BaseCommand):
    help = (
        "Build the in-memory installer into DIR (vmlinuz, initrd.img) from Debian packages: busybox-static, "
        "zstd and a kernel (by default the newest /boot/vmlinuz-* with its modules). --register NAME makes it "
        "a ready installer image that install jobs boot."
    )

    def add_arguments(self, parser):
        parser.add_argument("--arch", choices=["amd64", "arm64"], default="amd64")
        parser.add_argument("--out", required=True, type=Path)
        parser.add_argument("--kernel", type=Path, help="Kernel image (for a Pi: kernel8.img from an imported image).")
        parser.add_argument("--modules", type=Path, help="/lib/modules/<version> matching the kernel.")
        parser.add_argument("--register", metavar="NAME", help="Register DIR as a ready installer image NAME.")

    def handle(self, *args, arch, out, kernel, modules, register, **options):
        if kernel is None:
            if arch != "amd64":
                raise CommandError("For arm64 give --kernel (a Pi's kernel8.img) and --modules.")
            kernel, found_modules = installer.default_kernel()
            modules = modules or found_modules
            if kernel is None:
                raise CommandError("No kernel in /boot: apt-get install linux-image-amd64, or give --kernel.")
        busybox = Path(shutil.which("busybox") or "/bin/busybox")
        zstd = Path(shutil.which("zstd") or "/usr/bin/zstd")
        try:
            built = installer.build(out=out.resolve(), kernel=kernel, modules_dir=modules, busybox=busybox, zstd=zstd)
        except installer.BuildError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"wrote {out / 'vmlinuz'} and {out / 'initrd.img'} ({built['initrd_bytes']:,} bytes, "
            f"{len(built['modules'])} modules)"
        )
        if register:
            from images.services import image_create

            image = image_create(
                by=None,
                name=register,
                arch=arch,
                source=str(out.resolve()),
                kind="installer",
                boot_path=str(out.resolve()),
            )
            OSImage.objects.filter(pk=image.pk).update(state="ready", stage="ready")
            self.stdout.write(self.style.SUCCESS(f"registered installer image {register} v{image.version}"))
