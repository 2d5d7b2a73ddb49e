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
        parser.add_argument(
            "--from-image",
            metavar="NAME",
            help="arm64 for Raspberry Pis: take kernel8.img, modules and firmware from imported OS image NAME.",
        )

    def handle(self, *args, arch, out, kernel, modules, register, from_image=None, **options):
        pi_boot = None
        if from_image:
            source = OSImage.objects.filter(name=from_image, state="ready", kind="os").order_by("-version").first()
            if source is None or not source.boot_path:
                raise CommandError(f"No ready imported OS image called {from_image!r}.")
            pi_boot = Path(source.boot_path)
            kernel = kernel or pi_boot / "kernel8.img"
            if modules is None and source.root_path:
                found = sorted(Path(source.root_path).glob("lib/modules/*")) or sorted(
                    Path(source.root_path).glob("usr/lib/modules/*")
                )
                modules = found[-1] if found else None
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
            built = installer.build(
                out=out.resolve(), kernel=kernel, modules_dir=modules, busybox=busybox, zstd=zstd, pi_boot=pi_boot
            )
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
