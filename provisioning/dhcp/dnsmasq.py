"""dnsmasq: validate with `dnsmasq --test`, reload with SIGHUP (hosts.d/opts.d) or a restart
(the main file, which SIGHUP does not re-read; netboot.md §3)."""

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
    try:
        pid = int(Path(paths.dnsmasq_dir, "dnsmasq.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def reload(snap: SiteSnapshot, changed: set[str]) -> str:
    paths = snap.paths
    if not changed:
        return "unchanged"
    pid = _pid(paths)
    if "dnsmasq.conf" in changed:
        command = settings.PINET_DNSMASQ_RESTART.replace("{site}", snap.slug)
        if command:
            result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)  # noqa: S602
            if result.returncode != 0:
                raise DaemonError(f"restart command failed: {result.stderr.strip() or result.stdout.strip()}")
            return "restarted"
        if pid is None:
            return "not running"
        # Under a supervisor (systemd Restart=always) the daemon comes back with the new file.
        os.kill(pid, signal.SIGTERM)
        return "restarted"
    if pid is None:
        return "not running"
    # New files arrive by inotify, but changed and deleted ones stay until SIGHUP.
    os.kill(pid, signal.SIGHUP)
    return "reloaded"
