"""/etc/exports.d file for a site: read-only shared image roots, one writable data
directory per netbooting node (netboot.md §7: exports(5), fsid for trees without a UUID)."""

from __future__ import annotations

import re
import uuid

from . import HEADER, ConfigRenderError
from .snapshot import ANSWER_NETBOOT, SiteSnapshot

_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+-]*$")


def _fsid(path: str) -> str:
    # Stable per path, unique across exports: NFS needs one for trees without a device UUID.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "pinet-export:" + path))


def _checked(path: str) -> str:
    if not _SAFE_PATH.match(path) or "/../" in path + "/":
        raise ConfigRenderError(f"{path!r} cannot be exported: use plain absolute paths without spaces or quotes")
    return path


def render(snap: SiteSnapshot) -> dict[str, str]:
    lines = [HEADER, f"# Site {snap.slug}: NFS roots of network-booted nodes."]
    roots = sorted({h.root_path for h in snap.hosts if h.answer == ANSWER_NETBOOT and h.root_path})
    for root in roots:
        lines.append(f"{_checked(root)} {snap.subnet}(ro,no_subtree_check,no_root_squash,fsid={_fsid(root)})")
    for host in sorted(snap.hosts, key=lambda h: h.hostname):
        if host.answer != ANSWER_NETBOOT or not host.data_path or host.ip is None:
            continue
        client = str(host.ip)
        path = _checked(host.data_path)
        lines.append(f"{path} {client}(rw,no_subtree_check,no_root_squash,fsid={_fsid(path)})")
    return {f"pinet-{snap.slug}.exports": "\n".join(lines) + "\n"}
