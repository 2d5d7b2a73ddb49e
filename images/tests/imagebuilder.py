"""Small Raspberry Pi OS-shaped disk images, built without root mounts (netboot.md §7):
sfdisk for the table, mkfs.vfat + mcopy for the boot partition, mkfs.ext4 -d for the root."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from tests.tools import need, need_program

SECTOR = 512
BOOT_START, BOOT_SECTORS = 2048, 40960  # 20 MiB FAT16
ROOT_START = BOOT_START + BOOT_SECTORS

CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=deadbeef-02 rootfstype=ext4 fsck.repair=yes "
    "rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot"
)
FSTAB = """proc            /proc           proc    defaults          0       0
PARTUUID=deadbeef-01  /boot/firmware  vfat    defaults          0       2
PARTUUID=deadbeef-02  /               ext4    defaults,noatime  0       1
"""


def require_tools() -> None:
    need(os.geteuid() == 0, "building test images with device nodes needs root")
    for name, package in (
        ("sfdisk", "fdisk"),
        ("mkfs.vfat", "dosfstools"),
        ("mcopy", "mtools"),
        ("mkfs.ext4", "e2fsprogs"),
        ("debugfs", "e2fsprogs"),
        ("xz", "xz-utils"),
        ("zstd", "zstd"),
    ):
        need_program(name, package)


def make_trees(base: Path, *, payload: int = 200_000) -> tuple[Path, Path]:
    boot, root = base / "src-boot", base / "src-root"
    (boot / "overlays").mkdir(parents=True)
    (boot / "cmdline.txt").write_text(CMDLINE + "\n")
    (boot / "config.txt").write_text("arm_64bit=1\nauto_initramfs=1\n")
    (boot / "start4.elf").write_bytes(hashlib.sha256(b"start4").digest() * 6250)  # 200 KB
    (boot / "kernel8.img").write_bytes(b"kernel" * 5000)
    (boot / "bcm2711-rpi-4-b.dtb").write_bytes(b"\xd0\x0d\xfe\xed" * 100)
    (boot / "overlays" / "README").write_text("overlays\n")
    for d in ("etc/init.d", "etc/systemd/system/multi-user.target.wants", "usr/bin", "dev", "home/pi", "var/log"):
        (root / d).mkdir(parents=True)
    (root / "etc" / "fstab").write_text(FSTAB)
    (root / "etc" / "hostname").write_text("raspberrypi\n")
    (root / "etc" / "init.d" / "resize2fs_once").write_text("#!/bin/sh\n")
    os.symlink(
        "/lib/systemd/system/regenerate_ssh_host_keys.service",
        root / "etc/systemd/system/multi-user.target.wants/regenerate_ssh_host_keys.service",
    )
    (root / "usr" / "bin" / "sudo").write_bytes(b"\x7fELF sudo")
    os.chmod(root / "usr" / "bin" / "sudo", 0o4755)
    (root / "usr" / "bin" / "wall").write_bytes(b"\x7fELF wall")
    os.chown(root / "usr" / "bin" / "wall", 0, 5)
    os.chmod(root / "usr" / "bin" / "wall", 0o2755)
    with open(root / "usr" / "bin" / "python3.11", "wb") as fh:
        for _ in range(0, payload, 2**20):
            fh.write(os.urandom(min(2**20, payload)))
        fh.truncate(payload)
    os.link(root / "usr" / "bin" / "python3.11", root / "usr" / "bin" / "python3-hardlink")
    os.symlink("python3.11", root / "usr" / "bin" / "python3")
    os.mknod(root / "dev" / "null", 0o20666, os.makedev(1, 3))
    os.mkfifo(root / "dev" / "initctl", 0o600)
    os.chown(root / "home" / "pi", 1000, 1000)
    os.chmod(root / "home" / "pi", 0o2750)
    return boot, root


GPT_FAT = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"  # basic data
GPT_LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


def build_image(
    base: Path,
    *,
    root_mib: int = 24,
    with_boot: bool = True,
    with_root: bool = True,
    payload: int = 200_000,
    label: str = "dos",
) -> Path:
    """A disk image at base/disk.img with a FAT boot and an ext4 root partition."""
    boot, root = make_trees(base, payload=payload)
    disk = base / "disk.img"
    root_sectors = root_mib * 2048
    with open(disk, "wb") as fh:
        fh.truncate((ROOT_START + root_sectors + 2048) * SECTOR)
    gpt = label == "gpt"
    lines = [f"label: {label}", *([] if gpt else ["label-id: 0xdeadbeef"]), "unit: sectors", ""]
    if with_boot:
        lines.append(f"start={BOOT_START}, size={BOOT_SECTORS}, type={GPT_FAT if gpt else 'c'}")
    if with_root:
        lines.append(f"start={ROOT_START}, size={root_sectors}, type={GPT_LINUX if gpt else '83'}")
    subprocess.run(
        ["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(disk)],
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    if with_boot:
        subprocess.run(
            ["mkfs.vfat", "-F", "16", "-n", "bootfs", f"--offset={BOOT_START}", str(disk), str(BOOT_SECTORS // 2)],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                "mcopy",
                "-s",
                "-p",
                "-i",
                f"{disk}@@{BOOT_START * SECTOR}",
                *[str(p) for p in sorted(boot.iterdir())],
                "::/",
            ],
            check=True,
            capture_output=True,
        )
    if with_root:
        subprocess.run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-L",
                "rootfs",
                "-E",
                f"offset={ROOT_START * SECTOR}",
                "-d",
                str(root),
                str(disk),
                f"{root_mib * 1024}k",
            ],
            check=True,
            capture_output=True,
        )
    return disk


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def compress(disk: Path, fmt: str) -> Path:
    if fmt == "img":
        return disk
    if fmt == "img.xz":
        subprocess.run(["xz", "-k", "-T2", "-1", "-f", str(disk)], check=True)
        return disk.with_name(disk.name + ".xz")
    if fmt == "img.gz":
        out = disk.with_name(disk.name + ".gz")
        with open(out, "wb") as fh:
            subprocess.run(["gzip", "-1", "-c", str(disk)], stdout=fh, check=True)
        return out
    if fmt == "img.zst":
        out = disk.with_name(disk.name + ".zst")
        subprocess.run(["zstd", "-q", "-1", "-f", str(disk), "-o", str(out)], check=True)
        return out
    if fmt == "zip":
        import zipfile

        out = disk.with_name("raspios.zip")
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            archive.write(disk, "2026-11-01-raspios-bookworm-arm64-lite.img")
        return out
    raise ValueError(fmt)
