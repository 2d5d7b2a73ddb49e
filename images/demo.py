"""A tiny Raspberry Pi OS-shaped disk image for the demo, built without root or loop mounts
(sfdisk, mkfs.vfat + mcopy, mkfs.ext4 -d; netboot.md §7)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

TOOLS = {
    "sfdisk": "fdisk",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "zstd": "zstd",
}


def missing_tools() -> list[str]:
    return sorted(
        {
            package
            for tool, package in TOOLS.items()
            if not (shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin"))
        }
    )


def build_demo_image(target: Path) -> Path:
    """Write a 40 MiB image (FAT boot + ext4 root) to ``target``."""

    def tool(name):
        return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")

    with tempfile.TemporaryDirectory(prefix="pinet-demo-") as tmp:
        boot, root = Path(tmp, "boot"), Path(tmp, "root")
        boot.mkdir()
        (root / "etc").mkdir(parents=True)
        (boot / "cmdline.txt").write_text("console=serial0,115200 root=PARTUUID=d3m0d3m0-02 rootfstype=ext4 rootwait\n")
        (boot / "config.txt").write_text("arm_64bit=1\n")
        (boot / "start4.elf").write_bytes(b"demo start4.elf\n" * 1000)
        (boot / "kernel8.img").write_bytes(b"demo kernel\n" * 1000)
        (root / "etc" / "hostname").write_text("raspberrypi\n")
        (root / "etc" / "fstab").write_text(
            "proc /proc proc defaults 0 0\nPARTUUID=d3m0d3m0-02 / ext4 defaults,noatime 0 1\n"
        )
        with open(target, "wb") as fh:
            fh.truncate(40 << 20)
        table = "label: dos\nunit: sectors\n\nstart=2048, size=32768, type=c\nstart=34816, size=45056, type=83\n"
        subprocess.run(
            [tool("sfdisk"), "--no-reread", "--no-tell-kernel", "-q", str(target)],
            input=table,
            text=True,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [tool("mkfs.vfat"), "-F", "16", "-n", "bootfs", "--offset=2048", str(target), "16384"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [tool("mcopy"), "-s", "-i", f"{target}@@{2048 * 512}", *map(str, sorted(boot.iterdir())), "::/"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                tool("mkfs.ext4"),
                "-q",
                "-F",
                "-L",
                "rootfs",
                "-E",
                f"offset={34816 * 512}",
                "-d",
                str(root),
                str(target),
                "22528k",
            ],
            check=True,
            capture_output=True,
        )
    return target


DEMO_IMAGE = "demo-raspios"


def demo_image_ready(*, data_dir: Path):
    """The ready demo image (``demo-raspios``), built and imported for real the first time.
    Returns (image or None, why not): the demo and ``pinet_lab`` share it."""
    from images.models import OSImage
    from images.services import image_create, image_import_run

    image = OSImage.objects.filter(name=DEMO_IMAGE, state="ready").order_by("-version").first()
    if image is not None:
        return image, ""
    missing = missing_tools()
    if missing:
        return None, f"needs: apt-get install {' '.join(missing)}"
    source = Path(data_dir) / f"{DEMO_IMAGE}.img"
    build_demo_image(source)
    image = image_create(by=None, name=DEMO_IMAGE, arch="arm64", source=str(source))
    image = image_import_run(image_id=image.pk)
    source.unlink(missing_ok=True)
    if image.state != "ready":
        return None, f"the demo image did not import: {image.error}"
    return image, ""
