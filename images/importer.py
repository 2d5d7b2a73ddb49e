"""The image import pipeline: source -> verified -> decompressed -> partitions -> boot files and
root tree (no loop mounts) -> diskless fix-ups -> raw artefact -> atomic publish.

Each stage reports progress on the image row at most once a second; a row that left the
"importing" state (cancelled) stops the pipeline at its next report. Everything is built in
staging directories on the same file systems as the final ones and renamed into place, so
nothing half-written is ever visible or exported. Facts: netboot.md §1.6 and §7.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from .choices import ImageState
from .models import OSImage

log = logging.getLogger(__name__)

CHUNK = 1 << 20
FAT_TYPES = {"c", "b", "e", "6", "ef", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"}
LINUX_TYPES = {
    "83",
    "0fc63daf-8483-4772-8e79-3d69d8477de4",
    "b921b045-1df0-41c3-af44-4c6f280d3fae",
    "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
}
# Services that assume an SD card: resize it, rewrite it on first boot (PiServer removes these).
SD_ONLY_SERVICES = ("resize2fs_once", "rpi-resize", "regenerate_ssh_host_keys", "rpi-set-sysconf")
# Directories a read-only shared root needs writable, per node, in RAM (PiServer's list).
VOLATILE = (
    "/tmp",
    "/var/tmp",
    "/var/log",
    "/var/spool",
    "/var/lib/dhcpcd",
    "/var/lib/systemd/timesync",
    "/var/lib/sudo",
)


class ImportFailed(Exception):
    """The import cannot complete; the message tells the operator why and what to do."""


class ImportCancelled(ImportFailed):
    pass


@dataclass
class Partition:
    number: int
    start: int  # bytes
    size: int  # bytes
    type: str


class Progress:
    """Writes stage and byte counts to the image row, at most once a second, compare-and-swap
    on the importing state: a cancelled import learns of it at its next report."""

    def __init__(self, image: OSImage, interval: float = 1.0, echo: Callable[[OSImage], None] | None = None):
        self.image, self.interval, self.echo = image, interval, echo
        self.last = 0.0

    def stage(self, name: str, total: int = 0) -> None:
        self.image.stage, self.image.bytes_total, self.image.bytes_done = name, max(total, 0), 0
        self.write(force=True)

    def update(self, done: int, total: int | None = None, force: bool = False) -> None:
        self.image.bytes_done = max(done, 0)
        if total is not None:
            self.image.bytes_total = max(total, 0)
        self.write(force)

    def write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        updated = OSImage.objects.filter(pk=self.image.pk, state=ImageState.IMPORTING).update(
            stage=self.image.stage,
            bytes_done=self.image.bytes_done,
            bytes_total=self.image.bytes_total,
            updated=timezone.now(),
        )
        if updated != 1:
            raise ImportCancelled("The import was cancelled.")
        if self.echo:
            self.echo(self.image)


# --- tools ------------------------------------------------------------------------------------


def _tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise ImportFailed(f"{name} is not installed on this host (apt-get install {package}).")
    return path


def _run(argv: list[str], what: str, timeout: float = 3600, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ImportFailed(f"{what} failed: {detail[-1] if detail else f'exit {result.returncode}'}")
    return result


def _watch(
    proc: subprocess.Popen, progress: Progress, measure: Callable[[], int], limit: int | None = None, what: str = ""
) -> None:
    """Wait for proc while reporting measure() as progress; kill it on cancel or over limit."""
    try:
        while True:
            try:
                proc.wait(timeout=0.2)  # returns the moment the tool is done
                break
            except subprocess.TimeoutExpired:
                pass
            done = measure()
            if limit is not None and done > limit:
                raise ImportFailed(
                    f"The image is larger than the limit of {limit:,} bytes uncompressed (PINET_IMPORT_MAX_BYTES)."
                )
            progress.update(done)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    done = measure()
    progress.update(done, force=True)
    if limit is not None and done > limit:
        raise ImportFailed(
            f"The image is larger than the limit of {limit:,} bytes uncompressed (PINET_IMPORT_MAX_BYTES)."
        )
    if proc.returncode != 0:
        error = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        raise ImportFailed(f"{what} failed: {error.splitlines()[-1] if error else f'exit {proc.returncode}'}")


# --- sources ----------------------------------------------------------------------------------


def fetch(image: OSImage, staging: Path, progress: Progress) -> Path:
    """The source as a local file, hashed on the way. Server paths are read in place."""
    source = image.source
    if source.startswith(("http://", "https://")):
        target = staging / "source"
        try:
            response = urllib.request.urlopen(source, timeout=60)  # noqa: S310 (http(s) only, checked above)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ImportFailed(f"Cannot download {source}: {reason}.") from None
        total = int(response.headers.get("Content-Length") or 0)
        progress.stage("downloading", total)
        digest, done = hashlib.sha256(), 0
        with response, open(target, "wb") as out:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except OSError as exc:
                    raise ImportFailed(f"The download of {source} broke off: {exc}.") from None
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                done += len(chunk)
                if done > settings.PINET_IMPORT_MAX_BYTES:
                    raise ImportFailed("The download is larger than PINET_IMPORT_MAX_BYTES.")
                progress.update(done)
        if total and done != total:
            raise ImportFailed(f"The download of {source} stopped at {done:,} of {total:,} bytes.")
        _verify(image, digest.hexdigest())
        return target
    path = Path(source)
    if not path.is_absolute() or not path.is_file():
        raise ImportFailed(f"{source} is not a file on this server (give an absolute path or an http(s) URL).")
    progress.stage("verifying", path.stat().st_size)
    digest, done = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            progress.update(done)
    _verify(image, digest.hexdigest())
    return path


def _verify(image: OSImage, actual: str) -> None:
    if image.sha256 and actual != image.sha256:
        raise ImportFailed(f"Checksum mismatch: expected sha256 {image.sha256}, the source has {actual}.")


# --- formats ----------------------------------------------------------------------------------


def detect_format(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if head.startswith(b"\xfd7zXZ\x00"):
        return "img.xz"
    if head.startswith(b"\x1f\x8b"):
        return "img.gz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "img.zst"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    if len(head) >= 512 and head[510:512] == b"\x55\xaa":
        return "img"
    raise ImportFailed(
        "The source is not a disk image: no partition table, and not .xz, .gz, .zst, .zip or a tar of boot/ and root/."
    )


def _expected_size(path: Path, fmt: str) -> int | None:
    try:
        if fmt == "img.xz":
            out = _run([_tool("xz", "xz-utils"), "--robot", "--list", str(path)], "reading the .xz index").stdout
            totals = [line.split("\t") for line in out.splitlines() if line.startswith("totals")]
            return int(totals[0][4]) if totals else None
        if fmt == "img":
            return path.stat().st_size
        if fmt == "zip":
            return sum(i.file_size for i in zipfile.ZipFile(path).infolist())
    except (ImportFailed, OSError, ValueError, zipfile.BadZipFile, IndexError):
        return None
    return None


def _check_space(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free - settings.PINET_IMPORT_RESERVE_BYTES
    if needed > free:
        raise ImportFailed(
            f"Not enough free space in {directory}: the import needs about {needed:,} bytes and "
            f"{max(free, 0):,} are free beyond the reserve (PINET_IMPORT_RESERVE_BYTES)."
        )


def decompress(source: Path, fmt: str, staging: Path, progress: Progress) -> Path:
    """A raw disk image in staging (the source itself when it already is one)."""
    limit = settings.PINET_IMPORT_MAX_BYTES
    expected = _expected_size(source, fmt)
    if expected is not None and expected > limit:
        raise ImportFailed(
            f"The image is {expected:,} bytes uncompressed, over the limit of {limit:,} (PINET_IMPORT_MAX_BYTES)."
        )
    # Room for the raw image, the extracted trees (at most as large) and the artefact.
    _check_space(staging, 2 * (expected or source.stat().st_size * 4))
    if fmt == "img":
        return source
    raw = staging / "disk.img"
    progress.stage("decompressing", expected or 0)
    if fmt == "zip":
        return _unzip(source, raw, progress, limit)
    commands = {
        # xz and zstd use all cores where the file allows it (multi-block xz, zstd frames).
        "img.xz": [_tool("xz", "xz-utils"), "-dc", "-T0", str(source)],
        "img.gz": [shutil.which("pigz") or _tool("gzip", "gzip"), "-dc", str(source)],
        "img.zst": [_tool("zstd", "zstd"), "-dc", "-T0", "-q", str(source)],
    }
    with open(raw, "wb") as out:
        # The tool writes straight to the file (sparse where it can); Python only watches.
        proc = subprocess.Popen(commands[fmt], stdout=out, stderr=subprocess.PIPE)
        _watch(proc, progress, lambda: raw.stat().st_size, limit, f"Decompressing the {fmt} source")
    return raw


def _unzip(source: Path, raw: Path, progress: Progress, limit: int) -> Path:
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile:
        raise ImportFailed("The .zip is damaged or truncated.") from None
    images = [i for i in archive.infolist() if i.filename.lower().endswith(".img") and not i.is_dir()]
    if len(images) != 1:
        names = ", ".join(i.filename for i in images) or "none"
        raise ImportFailed(f"A .zip must hold exactly one .img; this one holds {len(images)} ({names}).")
    member = images[0]
    if member.file_size > limit:
        raise ImportFailed(f"The image is {member.file_size:,} bytes, over PINET_IMPORT_MAX_BYTES ({limit:,}).")
    progress.update(0, member.file_size)
    done = 0
    try:
        with archive.open(member) as src, open(raw, "wb") as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                progress.update(done)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ImportFailed(f"The .zip is damaged: {exc}.") from None
    return raw


# --- partitions -------------------------------------------------------------------------------


def _is_tar(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(512)
    return len(head) > 262 and head[257:262] == b"ustar"


def partitions(raw: Path) -> list[Partition]:
    result = subprocess.run([_tool("sfdisk", "fdisk"), "--json", str(raw)], capture_output=True, text=True)
    if result.returncode != 0 or not result.stdout.strip():
        raise ImportFailed("The image has no partition table (MBR or GPT) that sfdisk can read.")
    table = json.loads(result.stdout)["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    found = []
    for index, part in enumerate(table.get("partitions", []), start=1):
        found.append(
            Partition(index, int(part["start"]) * sector, int(part["size"]) * sector, str(part.get("type", "")).lower())
        )
    if not found:
        raise ImportFailed("The image has no partition table entries: its MBR/GPT lists no partitions.")
    return found


def pick(parts: list[Partition]) -> tuple[Partition, Partition]:
    boot = next((p for p in parts if p.type in FAT_TYPES), None)
    root = next((p for p in parts if p.type in LINUX_TYPES), None)
    if boot is None:
        raise ImportFailed("The image has no FAT boot partition.")
    if root is None:
        raise ImportFailed("The image has no Linux (ext4) root partition.")
    return boot, root


def extract_boot(raw: Path, part: Partition, target: Path, progress: Progress) -> None:
    progress.stage("extracting boot files", part.size)
    image = f"{raw}@@{part.start}"
    if subprocess.run([_tool("mdir", "mtools"), "-i", image, "::/"], capture_output=True).returncode != 0:
        raise ImportFailed(f"Partition {part.number} is not a readable FAT file system.")
    target.mkdir(parents=True)
    _run(
        [_tool("mcopy", "mtools"), "-s", "-p", "-n", "-m", "-i", image, "::/*", str(target)],
        "Copying the boot partition",
    )
    progress.update(part.size, force=True)


def extract_root(raw: Path, part: Partition, target: Path, progress: Progress) -> None:
    """debugfs rdump, then restore what rdump loses (netboot.md §7): setuid/setgid/sticky bits,
    hard links, device nodes and FIFOs."""
    debugfs = _tool("debugfs", "e2fsprogs")
    fs = f"{raw}?offset={part.start}"
    probe = subprocess.run([debugfs, "-R", "stats", fs], capture_output=True, text=True)
    if probe.returncode != 0 or "Filesystem magic number" not in probe.stdout:
        raise ImportFailed(f"Partition {part.number} is not an ext2/3/4 file system.")
    used = _used_bytes(probe.stdout) or part.size
    _check_space(target.parent, used)
    progress.stage("extracting root file system", used)
    target.mkdir(parents=True)
    proc = subprocess.Popen([debugfs, "-R", f"rdump / {target}", fs], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _watch(proc, progress, lambda: _tree_bytes(target), what="Extracting the root file system")
    progress.stage("restoring special files", 0)
    _restore_specials(debugfs, fs, target)


def _used_bytes(stats: str) -> int | None:
    values = dict(re.findall(r"^([A-Za-z ]+):\s+(\d+)$", stats, re.M))
    try:
        return (int(values["Block count"]) - int(values["Free blocks"])) * int(values["Block size"])
    except KeyError:
        return None


def _tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _restore_specials(debugfs: str, fs: str, target: Path) -> None:
    directories = ["/"] + [
        "/" + os.path.relpath(os.path.join(d, name), target) for d, dirs, _f in os.walk(target) for name in dirs
    ]
    commands = "".join(f'ls -p "{d}"\n' for d in directories if '"' not in d and "\n" not in d)
    listing = subprocess.run([debugfs, "-f", "-", fs], input=commands, capture_output=True, text=True).stdout
    current = "/"
    by_inode: dict[int, list[str]] = {}
    devices = []
    for line in listing.splitlines():
        if line.startswith("debugfs: ls -p "):
            current = line[len("debugfs: ls -p ") :].strip().strip('"')
            continue
        fields = line.split("/")
        if len(fields) < 7 or fields[5] in (".", ".."):
            continue
        inode, mode, uid, gid, name = int(fields[1]), int(fields[2], 8), int(fields[3]), int(fields[4]), fields[5]
        path = os.path.join(current, name).lstrip("/")
        kind = stat.S_IFMT(mode)
        local = target / path
        if kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            devices.append((path, inode, mode, uid, gid))
        elif kind == stat.S_IFREG:
            by_inode.setdefault(inode, []).append(path)
        if kind in (stat.S_IFREG, stat.S_IFDIR) and mode & 0o7000 and local.exists():
            os.chown(local, uid, gid, follow_symlinks=False)
            os.chmod(local, stat.S_IMODE(mode))  # chown cleared them; chmod after chown puts them back
    for path, inode, mode, uid, gid in devices:
        local = target / path
        local.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISFIFO(mode):
            os.mkfifo(local, stat.S_IMODE(mode))
        else:
            out = subprocess.run([debugfs, "-R", f"stat <{inode}>", fs], capture_output=True, text=True).stdout
            numbers = re.search(r"Device major/minor number:\s*(\d+):(\d+)", out)
            major, minor = (int(numbers[1]), int(numbers[2])) if numbers else (0, 0)
            os.mknod(local, mode, os.makedev(major, minor))
        os.chown(local, uid, gid, follow_symlinks=False)
        os.chmod(local, stat.S_IMODE(mode))
    for paths in by_inode.values():
        first, *others = sorted(paths)
        for other in others:
            os.unlink(target / other)
            os.link(target / first, target / other)


# --- tarballs ---------------------------------------------------------------------------------


def extract_tarball(source: Path, boot: Path, root: Path, progress: Progress) -> None:
    """A tar with boot/ and root/ at the top. Absolute paths, '..' and links that leave the
    tree are refused; everything else (owners, modes, devices) is kept."""
    try:
        archive = tarfile.open(source)
    except (tarfile.TarError, OSError) as exc:
        raise ImportFailed(f"The tarball cannot be read: {exc}.") from None
    with archive:
        members = archive.getmembers()
        progress.stage("extracting tarball", sum(m.size for m in members))
        for member in members:
            name = member.name
            parts = Path(name).parts
            if name.startswith("/") or ".." in parts:
                raise ImportFailed(f"The tarball has an unsafe path: {name!r}.")
            if member.issym() or member.islnk():
                base = Path("/", name).parent if member.issym() else Path("/")
                resolved = os.path.normpath(os.path.join(base, member.linkname))
                top = parts[0] if parts else ""
                if member.linkname.startswith("/") and member.issym():
                    pass  # absolute links resolve inside the booted node, not on this server
                elif not resolved.startswith(f"/{top}"):
                    raise ImportFailed(f"The tarball's link {name!r} -> {member.linkname!r} leaves the tree.")
            if parts and parts[0] not in ("boot", "root", "."):
                raise ImportFailed(f"The tarball must hold only boot/ and root/; found {name!r}.")
        tops = {Path(m.name).parts[0] for m in members if Path(m.name).parts}
        if not {"boot", "root"} <= tops:
            raise ImportFailed("The tarball must hold a boot/ and a root/ directory.")
        workdir = boot.parent / "tar"
        workdir.mkdir()
        archive.extractall(workdir, filter="fully_trusted")  # noqa: S202 (checked member by member above)
    os.rename(workdir / "boot", boot)
    os.rename(workdir / "root", root)
    workdir.rmdir()


# --- diskless fix-ups -------------------------------------------------------------------------


def diskless_fixups(root: Path, boot: Path) -> list[str]:
    """Make the tree boot from NFS (netboot.md §1.6): no SD partitions in fstab, RAM for the
    directories a read-only shared root must write, no SD-only first-boot services, and a
    cmdline.txt for an NFS root with vers=3. Returns what was changed."""
    done = []
    fstab = root / "etc" / "fstab"
    if fstab.exists():
        kept = []
        for line in fstab.read_text(errors="replace").splitlines():
            fields = line.split()
            sd_mount = (
                len(fields) >= 2
                and not line.lstrip().startswith("#")
                and fields[0].startswith(("PARTUUID=", "UUID=", "LABEL=", "/dev/mmcblk", "/dev/sd", "/dev/nvme"))
                and fields[1] in ("/", "/boot", "/boot/firmware")
            )
            if not sd_mount:
                kept.append(line)
        kept.append("# pinet: the root comes over NFS; these need to be writable per node")
        kept += [
            f"tmpfs {d} tmpfs defaults,nosuid,nodev,mode=1777 0 0"
            if d in ("/tmp", "/var/tmp")
            else f"tmpfs {d} tmpfs defaults,nosuid,nodev 0 0"
            for d in VOLATILE
        ]
        fstab.write_text("\n".join(kept) + "\n")
        done.append("fstab")
    etc = root / "etc"
    for path in list(etc.rglob("*")) if etc.is_dir() else []:
        if any(service in path.name for service in SD_ONLY_SERVICES) and (path.is_symlink() or path.is_file()):
            path.unlink()
            done.append(f"removed {path.relative_to(root)}")
    cmdline = boot / "cmdline.txt"
    if cmdline.exists():
        words = cmdline.read_text(errors="replace").split()
        drop = ("root=", "rootfstype=", "init=", "fsck.repair=", "resize", "quiet", "splash", "nfsroot=", "ip=")
        kept_words = [w for w in words if not w.startswith(drop) and w not in ("rw", "ro", "rootwait")]
        # The node's own nfsroot=<server>:<path> is added per node by the TFTP tree.
        cmdline.write_text(" ".join([*kept_words, "root=/dev/nfs", "ro", "ip=dhcp", "rootwait"]) + "\n")
        done.append("cmdline.txt")
    return done


# --- artefact and publishing -------------------------------------------------------------------


def make_artefact(raw: Path, target: Path, progress: Progress) -> tuple[str, int]:
    """The raw image recompressed with zstd (fast to stream and decompress on install)."""
    size = raw.stat().st_size
    progress.stage("compressing install image", size)
    proc = subprocess.Popen(
        [_tool("zstd", "zstd"), "-q", "-T0", "-3", "--sparse", "-o", str(target), str(raw)], stderr=subprocess.PIPE
    )
    _watch(proc, progress, lambda: target.stat().st_size if target.exists() else 0, what="Compressing")
    digest = hashlib.sha256()
    with open(target, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), target.stat().st_size


def final_paths(image: OSImage) -> tuple[Path, Path]:
    """Where a version lives: boot files + artefact in the image store, root under the NFS root."""
    store = Path(settings.PINET_IMAGE_ROOT) / image.name / str(image.version)
    nfs = Path(settings.PINET_NFS_ROOT) / "images" / image.name / str(image.version)
    return store, nfs


def staging_dirs(image: OSImage) -> tuple[Path, Path]:
    # One per attempt: a tool orphaned by a killed worker can only write into its own.
    name = f"{image.pk}-{image.attempts}"
    return (Path(settings.PINET_IMAGE_ROOT) / ".staging" / name, Path(settings.PINET_NFS_ROOT) / ".staging" / name)


def remove_staging(image: OSImage) -> None:
    for root in (Path(settings.PINET_IMAGE_ROOT), Path(settings.PINET_NFS_ROOT)):
        for path in (root / ".staging").glob(f"{image.pk}-*"):
            shutil.rmtree(path, ignore_errors=True)


def run(image: OSImage, progress: Progress) -> dict:
    """The whole pipeline for an image row already in state importing; returns the fields to
    record on success. Raises ImportFailed (with the reason) on any failure."""
    store_stage, nfs_stage = staging_dirs(image)
    remove_staging(image)  # what a killed earlier attempt left behind
    store_stage.mkdir(parents=True)
    nfs_stage.mkdir(parents=True)
    store, nfs = final_paths(image)
    if store.exists() or nfs.exists():
        raise ImportFailed(f"{store} or {nfs} already exists: refusing to overwrite a published version.")
    source = fetch(image, store_stage, progress)
    fmt = detect_format(source)
    boot_stage, root_stage = store_stage / "boot", nfs_stage / "root"
    fields: dict = {"format": fmt, "source_size": source.stat().st_size}
    raw = source if fmt == "tar" else decompress(source, fmt, store_stage, progress)
    if fmt == "tar" or _is_tar(raw):
        # A tarball of boot/ and root/ (possibly compressed): no disk image, no install artefact.
        fields["format"] = "tar"
        extract_tarball(raw, boot_stage, root_stage, progress)
        if raw != source:
            raw.unlink()
        artefact_sha, artefact_size, image_size = "", None, None
    else:
        boot_part, root_part = pick(partitions(raw))
        extract_boot(raw, boot_part, boot_stage, progress)
        extract_root(raw, root_part, root_stage, progress)
        image_size = raw.stat().st_size
        artefact_sha, artefact_size = make_artefact(raw, store_stage / "disk.img.zst", progress)
        if raw != source:
            raw.unlink()
    if source.parent == store_stage:
        source.unlink(missing_ok=True)
    progress.stage("diskless fix-ups", 0)
    diskless_fixups(root_stage, boot_stage)
    progress.stage("publishing", 0)
    os.sync()  # everything on disk before it gets its final name
    store.parent.mkdir(parents=True, exist_ok=True)
    nfs.parent.mkdir(parents=True, exist_ok=True)
    os.rename(nfs_stage, nfs)
    os.rename(store_stage, store)
    fields.update(
        image_size=image_size,
        root_path=str(nfs / "root"),
        boot_path=str(store / "boot"),
        artefact_path=str(store / "disk.img.zst") if artefact_size else "",
        artefact_sha256=artefact_sha,
        artefact_size=artefact_size,
    )
    return fields
