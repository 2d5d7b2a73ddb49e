"""dnsmasq: validate with `dnsmasq --test`; tell the running daemon as little as it needs.

- New files in hosts.d/opts.d: nothing to do, dnsmasq reads them through inotify.
- Changed or removed node files, or a changed main file: restart. Not SIGHUP: dnsmasq 2.90
  (Debian 12) dies on SIGHUP (SIGSEGV/SIGABRT) once it has answered a client whose dhcp-host
  line from a hosts file/dir carries set: tags, which every pinet node line does; and an
  inotify re-read of a changed file does not replace the record it already holds (both seen
  in provisioning/tests/test_boot_answers.py's lab). A restart costs a gap of a fraction of a
  second that clients cover by retransmitting; sites with many changes should use Kea, which
  reloads in place.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings

from ..rendering import dnsmasq as renderer
from ..rendering.snapshot import Paths, SiteSnapshot
from . import ConfigInvalid, DaemonError

render = renderer.render


def binary() -> str:
    return shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin") or "dnsmasq"


def directory(paths: Paths) -> str:
    return paths.dnsmasq_dir


def validate(snap: SiteSnapshot, files: dict[str, str]) -> None:
    text = renderer.validation_text(files)
    with tempfile.NamedTemporaryFile("w", suffix=".conf", prefix="pinet-dnsmasq-") as fh:
        fh.write(text)
        fh.flush()
        try:
            result = subprocess.run(
                [binary(), "--test", f"--conf-file={fh.name}"], capture_output=True, text=True, timeout=120
            )
        except FileNotFoundError:
            raise ConfigInvalid("dnsmasq is not installed on this host (apt-get install dnsmasq-base)") from None
    if result.returncode != 0:
        raise ConfigInvalid(_with_line((result.stderr or result.stdout).strip(), text))


def _with_line(message: str, text: str) -> str:
    """dnsmasq says 'bad … at line N of FILE': show that line, so the operator sees the input."""
    words = message.split()
    if "line" in words:
        try:
            number = int(words[words.index("line") + 1])
            return f"{message}\n  line {number}: {text.splitlines()[number - 1]}"
        except (ValueError, IndexError):
            pass
    return message


def _pid(paths: Paths) -> int | None:
    """The running dnsmasq of this site; None for a stale pid file (the pid reused by another
    program must never receive our signal)."""
    try:
        pid = int(Path(paths.dnsmasq_dir, "dnsmasq.pid").read_text().strip())
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if name == "dnsmasq" else None


def reload(snap: SiteSnapshot, changed) -> str:
    paths = snap.paths
    if not changed:
        return "unchanged"
    added = getattr(changed, "added", set())
    if "dnsmasq.conf" not in changed and set(changed) <= added:
        return "new nodes picked up by inotify"
    command = settings.PINET_DNSMASQ_RESTART.replace("{site}", snap.slug)
    if command:
        result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)  # noqa: S602
        if result.returncode != 0:
            raise DaemonError(f"restart command failed: {result.stderr.strip() or result.stdout.strip()}")
        return "restarted"
    pid = _pid(paths)
    if pid is None:
        return "not running"
    # Under a supervisor (systemd Restart=always) the daemon comes back with the new files.
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "not running"
    except OSError as exc:
        raise DaemonError(f"cannot restart dnsmasq (pid {pid}): {exc.strerror}; set PINET_DNSMASQ_RESTART") from exc
    return "restarted"
