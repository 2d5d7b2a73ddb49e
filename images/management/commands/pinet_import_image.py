"""Import an OS image here and now (or through the images queue) with a progress bar."""

from __future__ import annotations

import sys
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from images.choices import Arch, ImageState
from images.models import OSImage
from images.services import image_create, image_import_request, image_import_run


class Command(BaseCommand):
    help = (
        "Import NAME from SOURCE (a path on this server or an http(s) URL; .img, .img.xz, .img.gz, .img.zst, "
        ".zip with one .img, or a tar of boot/ and root/). Runs in this process unless --queue."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("source")
        parser.add_argument("--sha256", default="", help="Expected sha256 of the source.")
        parser.add_argument("--arch", default=Arch.ARM64, choices=Arch.values)
        parser.add_argument("--queue", action="store_true", help="Hand it to the images queue and follow it.")

    def handle(self, *args, name, source, sha256, arch, queue, **options):
        try:
            with transaction.atomic():
                image = image_create(by=None, name=name, arch=arch, source=source, sha256=sha256.lower())
                if queue:
                    image_import_request(image=image)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"{image} from {source}")
        if queue:
            image = self._follow(image.pk)
        else:
            image = image_import_run(image_id=image.pk, echo=self._bar)
        self._bar(image, final=True)
        if image.state != ImageState.READY:
            raise CommandError(f"Import failed: {image.error}")
        self.stdout.write(self.style.SUCCESS(f"{image} is ready: root {image.root_path}, boot {image.boot_path}"))

    def _follow(self, pk: int) -> OSImage:
        while True:
            image = OSImage.objects.get(pk=pk)
            if image.state in (ImageState.READY, ImageState.FAILED):
                return image
            self._bar(image)
            time.sleep(1)

    def _bar(self, image: OSImage, final: bool = False) -> None:
        width = 30
        filled = int(width * image.percent / 100)
        line = f"\r[{'#' * filled}{'.' * (width - filled)}] {image.percent:3d}% {image.stage or image.state:<32}"
        if image.bytes_total:
            line += f" {image.bytes_done / 2**20:,.0f}/{image.bytes_total / 2**20:,.0f} MiB"
        self.stdout.write(line, ending="\n" if final or not sys.stdout.isatty() else "")
        self.stdout.flush()
