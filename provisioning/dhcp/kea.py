"""ISC Kea: validate with `kea-dhcp4 -t`, reload with `config-reload` on its control socket
(which re-reads the -c file; a refused reload keeps the running configuration)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile

from ..rendering import kea as renderer
from ..rendering.snapshot import Paths, SiteSnapshot
from . import ConfigInvalid, DaemonError

render = renderer.render


def binary() -> str:
    return shutil.which("kea-dhcp4") or shutil.which("kea-dhcp4", path="/usr/sbin:/sbin") or "kea-dhcp4"


def directory(paths: Paths) -> str:
    return paths.kea_dir


def validate(snap: SiteSnapshot, files: dict[str, str]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="pinet-kea-") as fh:
        fh.write(renderer.validation_text(snap))
        fh.flush()
        try:
            result = subprocess.run([binary(), "-t", fh.name], capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            raise ConfigInvalid("kea-dhcp4 is not installed on this host (apt-get install kea-dhcp4-server)") from None
    if result.returncode != 0:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if "ERROR" in line or "Error" in line]
        raise ConfigInvalid("\n".join(lines) or result.stdout.strip() or result.stderr.strip())
    # -t ran with interfaces "*"; the running server checks the real thing, interfaces and all.
    socket_path = f"{snap.paths.kea_dir}/kea4.sock"
    try:
        answer = command(socket_path, "config-test", json.loads(files["kea-dhcp4.json"]))
    except OSError:
        return  # Kea is not running here: -t is all the checking there is
    if answer.get("result") != 0:
        raise ConfigInvalid(f"the running Kea refused it: {answer.get('text')}")


def command(socket_path: str, name: str, arguments: dict | None = None, timeout: float = 30) -> dict:
    request = {"command": name, **({"arguments": arguments} if arguments else {})}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(json.dumps(request).encode())
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            try:
                return json.loads(b"".join(chunks))
            except ValueError:
                continue
    return json.loads(b"".join(chunks) or b"{}")


def reload(snap: SiteSnapshot, changed: set[str]) -> str:
    paths = snap.paths
    if not changed:
        return "unchanged"
    socket_path = f"{paths.kea_dir}/kea4.sock"
    try:
        answer = command(socket_path, "config-reload")
    except (FileNotFoundError, ConnectionRefusedError):
        return "not running"
    except OSError as exc:
        raise DaemonError(f"Kea control socket {socket_path}: {exc}") from exc
    if answer.get("result") != 0:
        raise DaemonError(f"Kea refused the new configuration: {answer.get('text')}")
    return "reloaded"
