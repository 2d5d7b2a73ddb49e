"""``pinet_lab up|down|status|power``: a boot network of simulated Raspberry Pi 4 boards, served
by pinet's own daemons, for trying pinet without hardware.

Layout (all addresses from 203.0.113.0/24, a documentation range; nothing touches a real
interface and no lab traffic leaves the machine):

    <p>-srv     the boot server: bridge lab0 = 203.0.113.1; pinet's dnsmasq (or Kea plus a
                TFTP-only dnsmasq) rendered by the real site apply; the discovery listener;
                gunicorn for the boot endpoints on 203.0.113.1:8080; a Celery worker for
                queue site.lab (config applies and power actions)
    <p>-boards  the simulator process and its power strip (203.0.113.254:80)
    <p>-b<k>    board k's own network stack: eth0 with its MAC, a veth into lab0
    (--qemu)    an x86 QEMU machine (BIOS, iPXE in its NIC ROM) on a TAP in lab0, its disk a
                file; the power strip switches it through QEMU's monitor

``<p>`` is ``pinetlab-<6 hex digits of the data dir's path>``, so two checkouts (or parallel
tests) never share names. Everything is recorded in ``$PINET_DATA_DIR/lab/lab.json`` as it is
made: ``down`` stops exactly those processes (by pid and start time, never by name) and
deletes those namespaces, also after a crash.

pinet's processes in the server namespace use the operator's database and broker: SQLite and
the file-system broker are files; PostgreSQL and Redis over TCP are reached through a relay
(``relay.py``) listening on the namespace's loopback. The site's ``boot_url_base`` says where
its boards reach pinet (http://203.0.113.1:8080), so whichever worker renders site "lab" (the
lab's own, or a single-host worker consuming every site queue) renders the same answers.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

from . import netns
from .layout import (
    APPLETS,
    BOOT_URL_BASE,
    BRIDGE,
    IPXE_ROMS,
    LAB_SLUG,
    MAX_BOARDS,
    PDU_IP,
    PDU_PORT,
    PDU_URL,
    PREFIX_LEN,
    READY_TIMEOUT_S,
    SD_BYTES,
    SERVER_IP,
    VM_DISK_BYTES,
    VM_MAC,
    WEB_PORT,
    LabError,
    Layout,
    board_mac,
    board_serial,
    layout,
    procs,
    read_state,
    write_state,
)
from .netns import NetnsError, Proc
from .site import child_endpoints, child_env, lab_images, lab_site

# --- checks ---------------------------------------------------------------------------------


def _program(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=netns.SBIN_PATH)
    if path is None:
        raise LabError(f"{name} is not installed: apt-get install {package}")
    return path


@functools.cache
def _netns_works() -> str | None:
    # Only making one proves it: containers without CAP_SYS_ADMIN have `ip` but cannot.
    name = f"pinetlab-check-{os.getpid()}"
    try:
        netns.netns_add(name)
    except NetnsError as exc:
        return str(exc)
    netns.netns_delete(name)
    return None


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise LabError(
            f"pinet_lab {what} needs root (it makes network namespaces): "
            f"sudo {sys.executable} manage.py pinet_lab {what}"
        )


def preflight(backend: str, qemu: bool = False) -> dict[str, str]:
    """The programs the lab runs, or a LabError naming what to install."""
    require_root("up")
    if netns.ip_binary() is None:
        raise LabError("ip is not installed: apt-get install iproute2")
    tools = {
        "dnsmasq": _program("dnsmasq", "dnsmasq-base"),
        "busybox": _program("busybox", "busybox-static"),
        "zstd": _program("zstd", "zstd"),
    }
    if backend == "kea":
        tools["kea-dhcp4"] = _program("kea-dhcp4", "kea-dhcp4-server")
    gunicorn = Path(sys.executable).with_name("gunicorn")
    if not gunicorn.exists():
        raise LabError(f"gunicorn is not in this virtualenv: {sys.executable} -m pip install -r requirements.txt")
    tools["gunicorn"] = str(gunicorn)
    if qemu:
        from provisioning.installer import default_kernel

        tools["qemu"] = _program("qemu-system-x86_64", "qemu-system-x86")
        if not any(rom.exists() for rom in IPXE_ROMS):
            raise LabError("QEMU's iPXE network ROMs are missing: apt-get install ipxe-qemu")
        if default_kernel()[0] is None:
            raise LabError("No kernel in /boot for the x86 installer: apt-get install linux-image-amd64")
    problem = _netns_works()
    if problem:
        raise LabError(f"This machine does not let pinet make network namespaces: {problem}")
    return tools


# --- up -------------------------------------------------------------------------------------


def _wait(what: str, check: Callable[[], bool], proc: Proc, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if not proc.alive:
            raise LabError(f"{what} exited while starting; its log: {proc.log}\n{_tail(proc.log)}")
        if time.monotonic() > deadline:
            raise LabError(f"{what} did not come up within {timeout:.0f} s; its log: {proc.log}\n{_tail(proc.log)}")
        time.sleep(0.1)


def _tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _log_says(path: Path, text: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return text in path.read_text(errors="replace")
        except OSError:
            return False

    return check


def http_in(ns: str, url: str, *, method: str = "GET", timeout: float = 5.0) -> tuple[int, bytes]:
    """An HTTP request from inside namespace ``ns`` (the lab's addresses exist only there)."""

    def call() -> tuple[int, bytes]:
        request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)  # noqa: S310
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    return netns.in_netns(ns, call)


def _http_ok(ns: str, url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return http_in(ns, url, timeout=2)[0] == 200
        except OSError:
            return False

    return check


class _Starter:
    """Starts the lab's processes, recording each in the state file before waiting on it."""

    def __init__(self, lay: Layout, state: dict):
        self.lay, self.state = lay, state

    def start(self, name: str, argv: list[str], *, netns_name: str | None, env: dict | None = None) -> Proc:
        proc = netns.spawn(
            name, argv, log=self.lay.logs / f"{name}.log", env=env, netns=netns_name, cwd=settings.BASE_DIR
        )
        self.state["processes"].append(proc.as_dict())
        write_state(self.lay, self.state)
        return proc


def _make_network(lay: Layout, state: dict, boards: int, *, qemu: bool) -> None:
    def add(name: str) -> None:
        netns.netns_add(name)
        state["namespaces"].append(name)
        write_state(lay, state)

    ip = netns.run_ip
    srv = lay.server_ns
    add(srv)
    ip("-n", srv, "link", "set", "lo", "up")
    # The bridge is the boot network; the server's address sits on it (dnsmasq binds to it).
    ip("-n", srv, "link", "add", BRIDGE, "type", "bridge")
    ip("-n", srv, "addr", "add", f"{SERVER_IP}/{PREFIX_LEN}", "dev", BRIDGE)
    ip("-n", srv, "link", "set", BRIDGE, "up")
    add(lay.boards_ns)
    ip("-n", lay.boards_ns, "link", "set", "lo", "up")
    ip("link", "add", "pdu0", "netns", lay.boards_ns, "type", "veth", "peer", "name", "vpdu", "netns", srv)
    ip("-n", srv, "link", "set", "vpdu", "master", BRIDGE, "up")
    ip("-n", lay.boards_ns, "addr", "add", f"{PDU_IP}/{PREFIX_LEN}", "dev", "pdu0")
    ip("-n", lay.boards_ns, "link", "set", "pdu0", "up")
    for k in range(1, boards + 1):
        ns = lay.board_ns(k)
        add(ns)
        ip("-n", ns, "link", "set", "lo", "up")
        # Made inside the namespaces: the host's own namespace never sees these links.
        ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"vb{k}", "netns", srv)
        ip("-n", ns, "link", "set", "eth0", "address", board_mac(k))
        ip("-n", srv, "link", "set", f"vb{k}", "master", BRIDGE, "up")
        ip("-n", ns, "link", "set", "eth0", "up")
    if qemu:
        # The QEMU machine's NIC: a TAP on the bridge, inside the server namespace.
        ip("-n", srv, "tuntap", "add", "pnvm0", "mode", "tap")
        ip("-n", srv, "link", "set", "pnvm0", "master", BRIDGE, "up")


def _prepare_files(lay: Layout, boards: int, busybox: str, *, qemu: bool) -> None:
    # The agent's PATH holds exactly these applets, made afresh each time.
    shutil.rmtree(lay.root / "bin", ignore_errors=True)
    for folder in (lay.logs, lay.root / "run", lay.root / "bin"):
        folder.mkdir(parents=True, exist_ok=True)
    for applet in APPLETS:
        (lay.root / "bin" / applet).symlink_to(busybox)
    for k in range(1, boards + 1):
        folder = lay.board_dir(k)
        folder.mkdir(parents=True, exist_ok=True)
        sd = folder / "sd.img"
        if not sd.exists():
            # An empty (sparse) card: the board finds nothing to boot and asks the network.
            with open(sd, "wb") as fh:
                fh.truncate(SD_BYTES)
    disk = lay.root / "vm" / "disk.img"
    if qemu and not disk.exists():
        disk.parent.mkdir(parents=True, exist_ok=True)
        with open(disk, "wb") as fh:  # empty: the machine finds nothing to boot and asks the network
            fh.truncate(VM_DISK_BYTES)


def up(*, boards: int, backend: str, echo: Callable[[str], None], qemu: bool = False) -> dict:
    """Bring the lab up (or say it is up); returns its state."""
    from provisioning.services import site_config_apply

    if not 1 <= boards <= MAX_BOARDS:
        raise LabError(f"--boards must be 1 to {MAX_BOARDS}.")
    tools = preflight(backend, qemu)
    lay = layout()
    state = read_state(lay)
    if state is not None:
        problems = health(lay, state)
        if not problems:
            if (state["boards"], state["backend"], state.get("qemu", False)) == (boards, backend, qemu):
                echo(f"The lab is already up ({boards} boards, {backend}).")
                return state
            raise LabError(
                f"The lab is up with {state['boards']} boards on {state['backend']}"
                f"{' and QEMU' if state.get('qemu') else ''}: run pinet_lab down first to change that."
            )
        echo(f"Cleaning up a lab that stopped ({'; '.join(problems[:3])}).")
        down(purge=False, echo=lambda _: None)
    else:
        _delete_namespaces(lay, [])

    site = lab_site(backend)
    image, installer = lab_images(echo)
    if qemu:
        lab_images(echo, x86=True)
    result = site_config_apply(site=site)
    if result.status not in ("applied", "unchanged"):
        raise LabError(f"pinet could not render the lab site's configuration:\n{result.summary()}")
    database, broker, relay = child_endpoints()
    env = child_env(database, broker)

    state = {
        "tag": lay.tag,
        "backend": backend,
        "boards": boards,
        "qemu": qemu,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "site": site.slug,
        "image": str(image),
        "installer": str(installer),
        "namespaces": [],
        "processes": [],
        "boot_url_base": BOOT_URL_BASE,
        "power_strip": f"{PDU_URL}/outlets/",
    }
    write_state(lay, state)
    try:
        _prepare_files(lay, boards, tools["busybox"], qemu=qemu)
        _make_network(lay, state, boards, qemu=qemu)
        _start_processes(lay, state, tools, env, relay, site)
    except BaseException:
        echo("Starting the lab failed; stopping what had started.")
        with contextlib.suppress(Exception):
            down(purge=False, echo=lambda _: None)
        raise
    return state


def _start_processes(lay: Layout, state: dict, tools: dict, env: dict, relay: list[str], site) -> None:
    starter = _Starter(lay, state)
    python = sys.executable
    srv = lay.server_ns
    config_dir = Path(settings.PINET_CONFIG_ROOT) / site.slug
    if relay:
        proc = starter.start(
            "relay", [python, "-m", "provisioning.lab.relay", "--netns", srv, *relay], netns_name=None, env=env
        )
        _wait("the database/broker relay", _log_says(Path(proc.log), "ready"), proc)
    # dnsmasq under a restart loop, as systemd's Restart=always would: pinet restarts it by
    # ending it. Root, not nobody: the checkout may be in a home directory nobody cannot enter.
    conf = config_dir / "dnsmasq" / "dnsmasq.conf"
    loop = f'while :; do "{tools["dnsmasq"]}" -k --user=root --log-facility=- -C "{conf}"; sleep 0.2; done'
    proc = starter.start("dnsmasq", ["sh", "-c", loop], netns_name=srv)
    _wait("dnsmasq", _log_says(Path(proc.log), "started, version"), proc)
    if state["backend"] == "kea":
        run = lay.root / "run"
        kea_env = {**os.environ, "KEA_PIDFILE_DIR": str(run), "KEA_LOCKFILE_DIR": str(run)}
        proc = starter.start(
            "kea", [tools["kea-dhcp4"], "-c", config_dir / "kea" / "kea-dhcp4.json"], netns_name=srv, env=kea_env
        )
        _wait("kea-dhcp4", _log_says(Path(proc.log), "DHCP4_STARTED"), proc)
    proc = starter.start(
        "web",
        # No control socket: gunicorn's default one is per user, shared with any other gunicorn.
        [tools["gunicorn"], "pinet.wsgi", "-b", f"{SERVER_IP}:{WEB_PORT}", "-w", "2", "--threads", "4"]
        + ["--no-control-socket"],
        netns_name=srv,
        env=env,
    )
    _wait("the boot endpoints (gunicorn)", _http_ok(srv, f"{BOOT_URL_BASE}/healthz"), proc)
    worker = [python, "-m", "celery", "-A", "pinet", "worker", "-Q", site.queue, "-c", "1", "-l", "info"]
    worker += ["-n", f"{lay.prefix}@%h"]
    if not env["CELERY_BROKER_URL"].startswith("redis"):
        worker += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    proc = starter.start("worker", worker, netns_name=srv, env=env)
    _wait("the site.lab worker", _log_says(Path(proc.log), "ready."), proc)
    proc = starter.start(
        "discover",
        [python, "manage.py", "pinet_discover", "--site", site.slug, "--interface", BRIDGE],
        netns_name=srv,
        env=env,
    )
    _wait("the discovery listener", _log_says(Path(proc.log), "listening on"), proc)
    if state["qemu"]:
        _start_vm(lay, tools["qemu"], starter)
    _start_simulator(lay, state, starter)


def _start_vm(lay: Layout, qemu: str, starter: _Starter) -> None:
    """A PC: BIOS, iPXE in the virtio NIC's ROM (network first, then its disk), serial console
    to a log file, QEMU's monitor on a socket for the power strip. TCG, which works everywhere
    (nested KVM often does not); PINET_QEMU_ACCEL=kvm where KVM works."""
    accel = os.environ.get("PINET_QEMU_ACCEL", "tcg")
    qmp = lay.root / "run" / "vm.qmp"
    qmp.unlink(missing_ok=True)
    argv = [qemu, "-accel", accel, "-m", "512", "-display", "none", "-monitor", "none"]
    argv += ["-serial", f"file:{lay.logs / 'vm-serial.log'}", "-qmp", f"unix:{qmp},server=on,wait=off"]
    argv += ["-netdev", "tap,id=n0,ifname=pnvm0,script=no,downscript=no"]
    argv += ["-device", f"virtio-net-pci,netdev=n0,mac={VM_MAC},bootindex=1"]
    argv += ["-drive", f"file={lay.root / 'vm' / 'disk.img'},if=none,id=d0,format=raw"]
    argv += ["-device", "virtio-blk-pci,drive=d0,bootindex=2"]
    proc = starter.start("vm", argv, netns_name=lay.server_ns)
    _wait(f"the QEMU machine ({accel})", qmp.exists, proc)


def _start_simulator(lay: Layout, state: dict, starter: _Starter) -> None:
    zstd_dir = os.path.dirname(shutil.which("zstd") or "/usr/bin/zstd")
    config = {
        "state": str(lay.boards_file),
        "busybox": shutil.which("busybox") or "busybox",
        "agent_path": f"{lay.root / 'bin'}:{zstd_dir}",
        "pdu": {"ip": PDU_IP, "port": PDU_PORT},
        "boards": [
            {
                "mac": board_mac(k),
                "serial": board_serial(k),
                "netns": lay.board_ns(k),
                "sd": str(lay.board_dir(k) / "sd.img"),
                "work": str(lay.board_dir(k)),
            }
            for k in range(1, state["boards"] + 1)
        ],
        "vm": {"mac": VM_MAC, "qmp": str(lay.root / "run" / "vm.qmp")} if state["qemu"] else None,
    }
    path = lay.root / "sim.json"
    path.write_text(json.dumps(config, indent=2))
    lay.boards_file.unlink(missing_ok=True)
    proc = starter.start(
        "boards", [sys.executable, "-m", "provisioning.lab.sim", str(path)], netns_name=lay.boards_ns, env=None
    )
    _wait("the board simulator", lay.boards_file.exists, proc)


# --- down and status ------------------------------------------------------------------------


def health(lay: Layout, state: dict) -> list[str]:
    """What is wrong with a recorded lab: dead processes, missing namespaces (empty: all well)."""
    problems = [f"{p.name} (pid {p.pid}) is not running" for p in procs(state) if not p.alive]
    present = netns.netns_names()
    problems += [f"namespace {ns} is missing" for ns in state.get("namespaces", []) if ns not in present]
    return problems


def _delete_namespaces(lay: Layout, recorded: list[str]) -> list[str]:
    # The recorded ones, and any other of this lab's (made before a crash could record them).
    ours = sorted(n for n in netns.netns_names() if n.startswith(lay.prefix + "-"))
    names = list(dict.fromkeys([*reversed(recorded), *ours]))
    deleted = []
    for name in names:
        if name in netns.netns_names():
            netns.netns_delete(name)
            deleted.append(name)
    return deleted


def down(*, purge: bool, echo: Callable[[str], None]) -> None:
    """Stop what the lab started (by recorded pid), delete its namespaces; ``purge`` also
    removes its files (SD cards, logs). Safe to run any number of times."""
    require_root("down")
    lay = layout()
    state = read_state(lay) or {}
    stopped = [p.name for p in reversed(procs(state)) if netns.stop(p)]
    deleted = _delete_namespaces(lay, state.get("namespaces", []))
    if state:
        lay.state_file.unlink(missing_ok=True)
    if stopped or deleted:
        echo(f"Stopped {', '.join(stopped) or 'nothing'}; deleted {len(deleted)} network namespaces.")
    else:
        echo("The lab is not running.")
    if purge and lay.root.exists():
        shutil.rmtree(lay.root)
        echo(f"Removed {lay.root} (SD cards, logs).")


def _ago(iso: str | None) -> str:
    if not iso:
        return ""
    seconds = int((datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds())
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"


def status_text() -> str:
    from nodes.models import DiscoveredBoard, Node

    lay = layout()
    state = read_state(lay)
    if state is None:
        return "The lab is down. Start it with: sudo .venv/bin/python manage.py pinet_lab up"
    present = netns.netns_names()
    lines = [
        f"pinet lab: {state['boards']} boards on {state['backend']}, up since {state['started']}; files in {lay.root}",
        "namespaces: "
        + ", ".join(f"{ns}{'' if ns in present else ' (MISSING)'}" for ns in state.get("namespaces", [])),
        "processes:",
    ]
    for proc in procs(state):
        lines.append(
            f"  {proc.name:9} pid {proc.pid:<7} {'running' if proc.alive else 'NOT RUNNING':11} log {proc.log}"
        )
    try:
        simulated = json.loads(lay.boards_file.read_text())
        boards = simulated["boards"] + ([simulated["vm"]] if simulated.get("vm") else [])
    except (OSError, ValueError, KeyError):
        boards = []
    nodes = {n.mac: n for n in Node.objects.filter(mac__in=[b["mac"] for b in boards])}
    seen = set(DiscoveredBoard.objects.filter(mac__in=[b["mac"] for b in boards]).values_list("mac", flat=True))
    lines.append("boards:")
    for board in boards:
        node = nodes.get(board["mac"])
        known = f"node {node.hostname} ({node.boot_mode})" if node else "discovered" if board["mac"] in seen else "new"
        if board.get("vm"):
            serial = _tail(str(lay.logs / "vm-serial.log"), 1).strip()[-60:]
            lines.append(
                f"  {board['mac']} QEMU x86     power {board['power']:3}  {board['phase']:10} {'-':15} {known:28} "
                f"serial console: {serial or '(nothing yet)'}"
            )
            continue
        lines.append(
            f"  {board['mac']} serial {board['serial']}  power {board['power']:3}  {board['phase']:10} "
            f"{board.get('ip') or '-':15} {known:28} {board.get('detail', '')} ({_ago(board.get('since'))})"
        )
    lines += [
        f"boot endpoints: {state['boot_url_base']}/ (in {lay.server_ns})",
        f"power strip:    {state['power_strip']} (in {lay.boards_ns})",
    ]
    problems = health(lay, state)
    if problems:
        lines.append("PROBLEMS: " + "; ".join(problems) + " -- pinet_lab down, then up, starts it afresh.")
    return "\n".join(lines)


def power(*, board: str, action: str) -> dict:
    """Switch a lab board's outlet on the simulated power strip, as a person at the rack would."""
    require_root("power")
    from nodes.models import Node

    lay = layout()
    state = read_state(lay)
    if state is None:
        raise LabError("The lab is down.")
    name = board.strip().lower()
    if name[:1] == "b" and name[1:].isdigit():
        mac = board_mac(int(name[1:]))
    elif name == "vm":
        mac = VM_MAC
    else:
        node = Node.objects.filter(site__slug=LAB_SLUG, hostname=name).first()
        mac = node.mac if node else name.replace("-", ":")
    url = f"{PDU_URL}/outlets/{quote(mac, safe='')}" + ("" if action == "status" else f"/{action}")
    try:
        code, body = http_in(lay.boards_ns, url, method="GET" if action == "status" else "POST", timeout=10)
    except (OSError, NetnsError) as exc:
        raise LabError(f"The power strip did not answer: {exc}") from exc
    if code != 200:
        raise LabError(f"No lab board {board!r} (give its MAC, b<number>, vm or an adopted board's host name).")
    return json.loads(body)
