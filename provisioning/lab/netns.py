"""Network namespaces, and processes remembered by pid, for pinet's lab and its tests.

Standard library only. A namespace is made with ``ip netns add`` and entered per thread with
setns(2): a socket belongs to the namespace of the thread that created it, so one process can
listen inside a lab namespace and connect out of the host's (``in_netns``). Processes are
started in their own session with their output in a log file, and remembered as (pid, start
time): a pid that the kernel has since given to another program is never signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

SBIN_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"
NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
STOP_TIMEOUT_S = 5.0

T = TypeVar("T")


class NetnsError(Exception):
    """An `ip` command failed, or a namespace cannot be entered; the message says which."""


def ip_binary() -> str | None:
    return shutil.which("ip") or shutil.which("ip", path=SBIN_PATH)


def run_ip(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([ip_binary() or "ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def netns_names() -> set[str]:
    listing = subprocess.run([ip_binary() or "ip", "netns", "list"], capture_output=True, text=True)
    return {line.split()[0] for line in listing.stdout.splitlines() if line.strip()}


def netns_add(name: str) -> None:
    # Concurrent first-time `ip netns add` calls race on making /run/netns a shared mount.
    for attempt in range(5):
        made = subprocess.run([ip_binary() or "ip", "netns", "add", name], capture_output=True, text=True)
        if made.returncode == 0:
            return
        if attempt == 4:
            raise NetnsError(f"ip netns add {name}: {made.stderr.strip()}")
        time.sleep(0.1 * (attempt + 1))


def netns_pids(name: str) -> list[int]:
    found = subprocess.run([ip_binary() or "ip", "netns", "pids", name], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split() if pid.isdigit()]


def netns_delete(name: str) -> None:
    """Delete a namespace, first killing (by pid) whatever still runs inside it.

    A namespace outlives its name while a process is inside it. Only call this for namespaces
    whose every process the caller started (a daemon's forked helper included)."""
    for pid in netns_pids(name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deleted = subprocess.run([ip_binary() or "ip", "netns", "delete", name], capture_output=True, text=True)
    if deleted.returncode != 0 and name in netns_names():
        raise NetnsError(f"ip netns delete {name}: {deleted.stderr.strip()}")


_libc = ctypes.CDLL(None, use_errno=True)


def enter(name: str) -> None:
    """Move the calling thread (only it) into network namespace ``name``."""
    try:
        fd = os.open(NETNS_DIR / name, os.O_RDONLY)
    except OSError as exc:
        raise NetnsError(f"no network namespace {name}: {exc.strerror}") from None
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise NetnsError(f"cannot enter network namespace {name}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def in_netns(name: str, work: Callable[[], T]) -> T:
    """Run ``work`` in a short-lived thread inside namespace ``name`` and return its result;
    sockets it makes stay in that namespace, while the caller stays where it was."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            enter(name)
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"netns-{name}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


# --- processes --------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a process, or None if there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


@dataclass
class Proc:
    """A process this lab started: enough to find it again, and only it."""

    name: str
    pid: int
    start: int
    argv: list[str]
    log: str

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def alive(self) -> bool:
        # Reap it if it is our own child that ended (the test runs the lab in-process).
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(self.pid, os.WNOHANG)
        seen = _stat(self.pid)
        return seen is not None and seen[1] == self.start and seen[0] not in ("Z", "X")


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log: str | os.PathLike,
    env: dict[str, str] | None = None,
    netns: str | None = None,
    cwd: str | os.PathLike | None = None,
) -> Proc:
    """Start argv (inside namespace ``netns``) in its own session, output appended to ``log``.

    `ip netns exec` execs the program, so the pid is the program itself; its session and
    process group id are that pid, which is what ``stop`` signals. Never a pipe or terminal
    for stdio: dnsmasq dies of SIGHUP once its stdout closes."""
    command = [str(a) for a in argv]
    if netns:
        command = [ip_binary() or "ip", "netns", "exec", netns, *command]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    seen = _stat(proc.pid)
    # Popen returns after exec, so the start time read now is the program's own.
    return Proc(name=name, pid=proc.pid, start=seen[1] if seen else 0, argv=command, log=str(log))


def stop(proc: Proc, timeout: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM the process's group, then SIGKILL after ``timeout``; False if it was gone."""
    if not proc.alive:
        return False
    group = proc.pid if _group_of(proc.pid) == proc.pid else None
    _signal(proc.pid, group, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while proc.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.alive:
        _signal(proc.pid, group, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while proc.alive and time.monotonic() < deadline:
            time.sleep(0.05)
    elif group is not None:
        # The leader is gone; its children (dnsmasq under the restart loop) go with the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    return True


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _signal(pid: int, group: int | None, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group is not None:
            os.killpg(group, sig)
        else:
            os.kill(pid, sig)
