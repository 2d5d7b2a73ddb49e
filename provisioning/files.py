"""Writing generated files so that nothing half-written is ever visible to a daemon."""

from __future__ import annotations

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


def sync_tree(directory: Path, files: dict[str, str]) -> set[str]:
    """Make ``directory`` hold exactly ``files`` (relative path -> content) among the
    subdirectories they name; returns the relative paths that were written or removed."""
    changed = set()
    for name, content in files.items():
        target = directory / name
        try:
            if target.read_text() == content:
                continue
        except (FileNotFoundError, UnicodeDecodeError):
            pass
        write_atomic(target, content)
        changed.add(name)
    managed_dirs = {str(Path(name).parent) for name in files} | {"hosts.d", "opts.d"}
    for sub in managed_dirs - {"."}:
        folder = directory / sub
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            name = f"{sub}/{entry.name}"
            if entry.is_file() and not entry.name.startswith(".") and name not in files:
                entry.unlink()
                changed.add(name)
    return changed


def _replace_symlink(link: Path, target: str) -> None:
    if link.is_symlink() and os.readlink(link) == target:
        return
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
            os.rename(staging, folder)
            changed.add(entry.name)
        for alias in entry.aliases:
            wanted_links[alias] = f".nodes/{entry.name}"
    for alias, target in wanted_links.items():
        link = root / alias
        if not (link.is_symlink() and os.readlink(link) == target):
            _replace_symlink(link, target)
            changed.add(alias)
    for entry in root.iterdir():
        if entry.is_symlink() and entry.name not in wanted_links and os.readlink(entry).startswith(".nodes/"):
            entry.unlink()
            changed.add(entry.name)
    keep = {e.name for e in plan.values()}
    for folder in store.iterdir():
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
