"""The TFTP tree of a site, as a plan: which directory each node gets and what is in it.

A Pi asks for its files under a prefix: its MAC (EEPROM TFTP_PREFIX=2, and dnsmasq's
tftp-unique-root=mac resolves every request inside <root>/<mac>/) or its serial (the
default TFTP_PREFIX=0), clearing the prefix if start4.elf is not there (netboot.md §1.3).
So each node gets one directory, reachable as <mac> and <serial8> at the top, and inside
itself as <serial8>/ and <mac>/ (self-links), whichever scheme the board uses.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, replace

from .snapshot import ANSWER_INSTALL, ANSWER_LOCAL, HostSnapshot, SiteSnapshot


@dataclass(frozen=True)
class NodeDir:
    name: str  # the node's directory under .nodes/ (changes when its content changes)
    aliases: tuple[str, ...]  # top-level names that link to it: the MAC and the serial prefix
    links: tuple[tuple[str, str], ...]  # (name, target): the boot files, and the self-links
    files: tuple[tuple[str, str], ...]  # (name, content): config.txt and cmdline.txt


def nfs_cmdline(base: str, host: HostSnapshot, snap: SiteSnapshot) -> str:
    """The image's cmdline.txt with the SD-card root replaced by the NFS root (netboot.md §1.6:
    vers=3, because an initramfs mounts with klibc nfsmount, which knows only v2/v3)."""
    drop = ("root=", "rootfstype=", "nfsroot=", "ip=", "init=", "fsck.repair=", "rootwait", "resize")
    kept = [word for word in base.split() if not word.startswith(drop) and word not in ("rw", "ro")]
    kept += [
        "root=/dev/nfs",
        f"nfsroot={snap.nfs_server}:{host.root_path},vers=3,tcp",
        "ro",
        "ip=dhcp",
        "rootwait",
        f"pinet.data={snap.nfs_server}:{host.data_path}",
    ]
    return " ".join(kept)


def installer_cmdline(base: str, host: HostSnapshot, snap: SiteSnapshot) -> str:
    kept = [w for w in base.split() if not w.startswith(("root=", "init=", "pinet."))]
    return " ".join([*kept, f"pinet.url={host.boot_url}", f"pinet.host={host.hostname}"])


def node_dir(
    host: HostSnapshot, snap: SiteSnapshot, boot_files: tuple[str, ...], base_cmdline: str, base_config: str
) -> NodeDir | None:
    """What one node's directory holds; None when the node boots from its own storage."""
    if host.answer == ANSWER_LOCAL or not host.is_pi or not host.boot_dir:
        return None
    cmdline = (
        installer_cmdline(base_cmdline, host, snap)
        if host.answer == ANSWER_INSTALL
        else nfs_cmdline(base_cmdline, host, snap)
    )
    config = (base_config.rstrip("\n") + "\n" if base_config else "") + (
        f"# pinet: {host.hostname} ({host.answer})\n[all]\n"
    )
    files = (("cmdline.txt", cmdline + "\n"), ("config.txt", config))
    overridden = {name for name, _ in files}
    links = [(name, f"{host.boot_dir}/{name}") for name in sorted(boot_files) if name not in overridden]
    aliases = [host.mac_dashed] + ([host.serial8] if host.serial8 else [])
    links += [(alias, ".") for alias in aliases]
    digest = hashlib.sha256(repr((links, files)).encode()).hexdigest()[:12]
    return NodeDir(name=f"{host.mac_dashed}-{digest}", aliases=tuple(aliases), links=tuple(links), files=files)


def plan(snap: SiteSnapshot, boot_dirs: dict[str, tuple[tuple[str, ...], str, str]]) -> dict[str, NodeDir]:
    """Node directories by MAC. ``boot_dirs`` maps an image boot dir to (file names, its
    cmdline.txt, its config.txt), read by the caller: this function does no I/O."""
    result = {}
    # Pi 5 serial prefixes can repeat (netboot.md §1.3): a shared prefix serves nobody.
    counts = Counter(h.serial8 for h in snap.hosts if h.serial8)
    shared = {serial for serial, n in counts.items() if n > 1}
    for host in snap.hosts:
        if host.serial8 in shared:
            host = replace(host, serial8=None)
        files, cmdline, config = boot_dirs.get(host.boot_dir, ((), "", ""))
        entry = node_dir(host, snap, files, cmdline, config)
        if entry is not None:
            result[host.mac] = entry
    return result
