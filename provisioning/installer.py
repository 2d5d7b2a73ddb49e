"""Building pinet's in-memory installer from Debian packages: a kernel, only the modules it
needs, busybox-static, zstd and the agent, packed into a gzip'd cpio initramfs (no Buildroot).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

AGENT = Path(__file__).resolve().parent / "agent" / "pinet-agent.sh"
# Network and disk drivers a PC, a VM or an arm64 server needs to reach pinet and its disk.
MODULES = (
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "e1000",
    "e1000e",
    "ahci",
    "ata_piix",
    "nvme",
    "sd_mod",
    "mmc_block",
    "sdhci_pci",
    "r8169",
    "igb",
)

INIT = """#!/bin/busybox sh
# pinet installer init: drivers, then the agent; if it fails, say why and retry after a pause.
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r module; do insmod "/lib/modules/$module" 2>/dev/null; done < /etc/pinet-modules
ip link set lo up
sleep 1
for path in /sys/class/net/*; do
    name=${path##*/}
    [ "$name" = lo ] || { PINET_IFACE=$name; break; }
done
export PINET_IFACE
echo "pinet installer: network interface $PINET_IFACE"
while :; do
    sh /pinet-agent.sh && exit 0
    echo "pinet installer: the install did not complete; retrying in 30 s"
    sleep 30
done
"""


class BuildError(Exception):
    pass


def _module_closure(modules_dir: Path, names: tuple[str, ...]) -> list[str]:
    """The modules (and what they depend on) in load order, as paths relative to modules_dir."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[re.sub(r"\.ko(\.\w+)?$", "", Path(path).name).replace("-", "_")] = path
    order: list[str] = []

    def add(path: str) -> None:
        if path in order:
            return
        for dep in reversed(deps.get(path, [])):
            add(dep)
        order.append(path)

    for name in names:
        if name in by_name:
            add(by_name[name])
    return order


class Cpio:
    """A newc cpio archive written in memory: the format the kernel unpacks as initramfs."""

    def __init__(self):
        self.buffer, self.ino = io.BytesIO(), 1

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1) -> None:
        encoded = name.encode() + b"\0"
        header = "070701" + "".join(
            f"{v:08x}" for v in (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        )
        self.ino += 1
        self.buffer.write(header.encode() + encoded)
        self.buffer.write(b"\0" * (-(110 + len(encoded)) % 4))
        self.buffer.write(data)
        self.buffer.write(b"\0" * (-len(data) % 4))

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def close(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buffer.getvalue()


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    found = re.findall(r"(/\S+\.so[\w.]*)", out)
    return sorted(set(found))


def build(
    *, out: Path, kernel: Path, modules_dir: Path | None, busybox: Path, zstd: Path, pi_boot: Path | None = None
) -> dict:
    """Write out/vmlinuz and out/initrd.img (and, for a Pi, the firmware files around them);
    returns what went in."""
    if not kernel.is_file():
        raise BuildError(f"No kernel at {kernel} (apt-get install linux-image-amd64, or give --kernel).")
    for tool, package in ((busybox, "busybox-static"), (zstd, "zstd")):
        if not tool.is_file():
            raise BuildError(f"{tool} is missing (apt-get install {package}).")
    out.mkdir(parents=True, exist_ok=True)
    archive = Cpio()
    directories = set()

    def ensure_dirs(path: str) -> None:
        parts = Path(path).parent.parts
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in directories:
                directories.add(d)
                archive.directory(d)

    for d in ("bin", "usr/bin", "etc", "lib", "proc", "sys", "dev", "tmp", "run"):
        ensure_dirs(d + "/x")
    archive.file("init", INIT.encode(), 0o755)
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    archive.symlink("bin/sh", "busybox")
    archive.file("pinet-agent.sh", AGENT.read_bytes(), 0o755)
    archive.file("usr/bin/zstd", zstd.read_bytes(), 0o755)
    libraries = _libraries(str(zstd))
    for lib in libraries:
        real = os.path.realpath(lib)
        ensure_dirs(lib.lstrip("/"))
        archive.file(lib.lstrip("/"), Path(real).read_bytes(), 0o755)
    loaded = []
    if modules_dir is not None and (modules_dir / "modules.dep").exists():
        for rel in _module_closure(modules_dir, MODULES):
            source = modules_dir / rel
            data = source.read_bytes()
            if rel.endswith(".xz"):
                data = subprocess.run(["xz", "-dc"], input=data, capture_output=True, check=True).stdout
                rel = rel[:-3]
            elif rel.endswith(".zst"):
                data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
                rel = rel[:-4]
            target = f"lib/modules/{rel}"
            ensure_dirs(target)
            archive.file(target, data)
            loaded.append(rel)
    archive.file("etc/pinet-modules", "".join(f"{m}\n" for m in loaded).encode())
    initrd = out / "initrd.img"
    initrd.write_bytes(gzip.compress(archive.close(), compresslevel=6))
    shutil.copyfile(kernel, out / "vmlinuz")
    for name in ("vmlinuz", "initrd.img"):
        os.chmod(out / name, 0o644)
    if pi_boot is not None:
        _pi_firmware(pi_boot, out)
    return {"kernel": str(kernel), "modules": loaded, "libraries": libraries, "initrd_bytes": initrd.stat().st_size}


def default_kernel() -> tuple[Path | None, Path | None]:
    """The newest Debian kernel on this host and its modules directory."""
    kernels = sorted(Path("/boot").glob("vmlinuz-*"), key=lambda p: p.stat().st_mtime)
    if not kernels:
        return None, None
    version = kernels[-1].name.removeprefix("vmlinuz-")
    modules = Path("/lib/modules") / version
    return kernels[-1], modules if modules.is_dir() else None


def _pi_firmware(boot: Path, out: Path) -> None:
    """A Pi boots the firmware of its boot partition: copy it from an imported Raspberry Pi OS
    image, and point config.txt at pinet's kernel and initramfs (the per-node TFTP directory
    adds the node's cmdline with its boot URL)."""
    for entry in boot.iterdir():
        if entry.name in ("cmdline.txt", "config.txt", "vmlinuz", "initrd.img"):
            continue
        target = out / entry.name
        if entry.is_dir():
            shutil.copytree(entry, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(entry, target)
    (out / "config.txt").write_text(
        "# pinet installer\n[all]\narm_64bit=1\nkernel=vmlinuz\ninitramfs initrd.img followkernel\nenable_uart=1\n"
    )
    (out / "cmdline.txt").write_text("console=serial0,115200 console=tty1 rdinit=/init\n")
