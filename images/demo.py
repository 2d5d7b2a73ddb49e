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


# 16-bit real-mode MBR boot code that prints its message on COM1 and halts: a PC (or VM) that
# boots the installed demo disk says so on its serial console.
X86_MESSAGE = b"pinet demo: booted from its own disk"


def serial_boot_code(message: bytes) -> bytes:
    """MBR boot code that writes ``message`` and a line end to COM1 and halts."""
    return (
        bytes.fromhex(
            "fa"  # cli
            "31c0"  # xor ax, ax
            "8ed8"  # mov ds, ax
            "be167c"  # mov si, 0x7c16 (the message, 22 bytes in)
            "baf803"  # mov dx, 0x3f8 (COM1)
            "ac"  # .next: lodsb
            "84c0"  # test al, al
            "7403"  # jz .halt
            "ee"  # out dx, al
            "ebf8"  # jmp .next
            "f4"  # .halt: hlt
            "ebfd"  # jmp .halt
        )
        + message
        + b"\r\n\0"
    )


X86_BOOT_CODE = serial_boot_code(X86_MESSAGE)


def build_demo_image(target: Path, *, x86_boot_code: bool = False) -> Path:
    """Write a 40 MiB image (FAT boot + ext4 root) to ``target``; with ``x86_boot_code`` its
    MBR also boots a PC to a message on the serial console."""

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
    if x86_boot_code:
        # The boot code area only (the partition table starts at byte 446).
        with open(target, "r+b") as fh:
            fh.write(X86_BOOT_CODE.ljust(446, b"\0"))
    return target


DEMO_IMAGE = "demo-raspios"
DEMO_X86_IMAGE = "demo-x86"


def demo_image_ready(*, data_dir: Path, x86: bool = False):
    """The ready demo image (``demo-raspios``, arm64; ``demo-x86``, amd64, whose disk boots a PC
    to a serial message), built and imported for real the first time. Returns (image or None,
    why not): the demo and ``pinet_lab`` share them."""
    from images.models import OSImage
    from images.services import image_create, image_import_run

    name, arch = (DEMO_X86_IMAGE, "amd64") if x86 else (DEMO_IMAGE, "arm64")
    image = OSImage.objects.filter(name=name, state="ready").order_by("-version").first()
    if image is not None:
        return image, ""
    missing = missing_tools()
    if missing:
        return None, f"needs: apt-get install {' '.join(missing)}"
    source = Path(data_dir) / f"{name}.img"
    build_demo_image(source, x86_boot_code=x86)
    image = image_create(by=None, name=name, arch=arch, source=str(source))
    image = image_import_run(image_id=image.pk)
    source.unlink(missing_ok=True)
    if image.state != "ready":
        return None, f"the demo image did not import: {image.error}"
    return image, ""
