"""Writing generated files so that nothing half-written is ever visible to a daemon."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .rendering.tftp import NodeDir


def write_atomic(path: Path, content: str, mode: int = 0o644) -> None:
    """Write beside the target, fsync, rename over it, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(content)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


MANIFEST = ".pinet-manifest.json"
# The digest of the configuration the daemon last took; a different one means a reload is owed.
LOADED = ".pinet-loaded"
# Below this many files each is fsynced on its own; above it one os.sync() is far cheaper
# than thousands of fsyncs (10k host files: seconds instead of milliseconds).
FSYNC_EACH_LIMIT = 16


class TreeChange(set):
    """The relative paths a sync_tree call wrote or removed, split by kind."""

    def __init__(self, added=(), modified=(), removed=()):
        super().__init__([*added, *modified, *removed])
        self.added, self.modified, self.removed = set(added), set(modified), set(removed)


def sync_tree(directory: Path, files: dict[str, str]) -> TreeChange:
    """Make ``directory`` hold exactly ``files`` (relative path -> content) in the
    subdirectories they name; returns what was added, modified or removed. A manifest
    of content hashes spares re-reading thousands of unchanged files on every apply."""
    directory.mkdir(parents=True, exist_ok=True)
    for sub in {str(Path(name).parent) for name in files} - {"."}:
        (directory / sub).mkdir(parents=True, exist_ok=True)
    manifest_path = directory / MANIFEST
    try:
        old = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        old = {}
    digests = {name: hashlib.sha256(content.encode()).hexdigest() for name, content in files.items()}
    to_write, added = [], []
    for name in sorted(files):
        exists = (directory / name).is_file()
        if old.get(name) != digests[name] or not exists:
            to_write.append(name)
            if not exists:
                added.append(name)
    if to_write and old:
        # Forget the files about to change first: a crash mid-way then rewrites them next time
        # instead of trusting a manifest that describes content no longer on disk.
        write_atomic(manifest_path, json.dumps({k: v for k, v in old.items() if k not in to_write}, sort_keys=True))
    staged = []
    try:
        for name in to_write:
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            staged.append((tmp, target))
            with os.fdopen(fd, "w") as fh:
                fh.write(files[name])
                os.fchmod(fh.fileno(), 0o644)
                if len(to_write) <= FSYNC_EACH_LIMIT:
                    fh.flush()
                    os.fsync(fh.fileno())
        if len(to_write) > FSYNC_EACH_LIMIT:
            os.sync()
        for tmp, target in staged:
            os.replace(tmp, target)
    except BaseException:
        for tmp, _target in staged:
            Path(tmp).unlink(missing_ok=True)
        raise
    removed = set()
    subdirs = {str(Path(name).parent) for name in files} | {"hosts.d", "opts.d"}
    for sub in sorted(subdirs - {"."}):
        folder = directory / sub
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            name = f"{sub}/{entry.name}"
            if entry.is_file() and not entry.name.startswith(".") and name not in files:
                os.unlink(entry.path)
                removed.add(name)
    changed = TreeChange(added, set(to_write) - set(added), removed)
    if changed:
        for folder in {directory} | {directory / sub for sub in subdirs - {"."}}:
            if folder.is_dir():
                _fsync_dir(folder)
    if changed or old != digests:
        write_atomic(manifest_path, json.dumps(digests, sort_keys=True))
    return changed


class TreeConflict(Exception):
    """Something pinet did not create stands where it needs to put a link."""


def replace_symlink(link: Path, target: str) -> None:
    if link.is_symlink() and os.readlink(link) == target:
        return
    if link.exists() and not link.is_symlink():
        raise TreeConflict(f"{link} exists and is not pinet's link: move it away")
    tmp = link.with_name(f".{link.name}.new")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)  # atomic: a client sees the old tree or the new one


def sync_tftp(root: Path, plan: dict[str, NodeDir]) -> set[str]:
    """Materialise the TFTP plan under ``root``: node directories in .nodes/, reached by
    atomically swapped symlinks named after the MAC and the serial prefix."""
    store = root / ".nodes"
    store.mkdir(parents=True, exist_ok=True)
    changed = set()
    wanted_links: dict[str, str] = {}
    staged: list[tuple[Path, Path]] = []
    for entry in plan.values():
        folder = store / entry.name
        if not folder.is_dir():
            staging = Path(tempfile.mkdtemp(dir=store, prefix=f".{entry.name}."))
            for name, target in entry.links:
                os.symlink(target, staging / name)
            for name, content in entry.files:
                (staging / name).write_text(content)
                os.chmod(staging / name, 0o644)
            # dnsmasq serves TFTP as user nobody: the tree must be world-readable.
            os.chmod(staging, 0o755)  # noqa: S103
            staged.append((staging, folder))
    if staged:
        # The name of a node directory is a hash of its content and is never rewritten, so its
        # files must be on disk before it gets that name: one sync for all of them.
        os.sync()
        for staging, folder in staged:
            os.rename(staging, folder)
            changed.add(folder.name)
    for entry in plan.values():
        for alias in entry.aliases:
            wanted_links[alias] = f".nodes/{entry.name}"
    for alias, target in wanted_links.items():
        link = root / alias
        if not (link.is_symlink() and os.readlink(link) == target):
            replace_symlink(link, target)
            changed.add(alias)
    for entry in root.iterdir():
        if entry.is_symlink() and entry.name not in wanted_links and os.readlink(entry).startswith(".nodes/"):
            entry.unlink()
            changed.add(entry.name)
    keep = {e.name for e in plan.values()}
    for folder in store.iterdir():
        # Callers hold the site lock, so a dot-directory here is staging a crash left behind.
        if folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)
    return changed


def read_boot_dir(path: str) -> tuple[tuple[str, ...], str, str]:
    """(entries, cmdline.txt, config.txt) of an image's boot directory; empty when missing."""
    directory = Path(path)
    if not path or not directory.is_dir():
        return (), "", ""

    def text(name: str) -> str:
        try:
            return (directory / name).read_text(errors="replace")
        except OSError:
            return ""

    return tuple(sorted(e.name for e in directory.iterdir())), text("cmdline.txt").strip(), text("config.txt")
