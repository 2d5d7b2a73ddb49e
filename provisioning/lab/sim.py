"""Simulated Raspberry Pi 4 boards for ``pinet_lab`` (standard library only).

    python -m provisioning.lab.sim CONFIG.json      (started by ``pinet_lab up``)

Each board is a thread inside its own network namespace (its own MAC, addresses and sockets,
as a real board has), joined to the lab's bridge by a veth pair. It behaves like a Pi 4 whose
EEPROM says BOOT_ORDER=0xf12 and TFTP_PREFIX=2 (network first, then the SD card, then start
over; files under its MAC), with the DHCP and TFTP packet code of ``probe.py``:

1. power on -> DHCP DISCOVER as the Pi bootloader (option 60, 93, 97 ``RPi4`` with its serial);
2. an OFFER with option 43 "Raspberry Pi Boot": REQUEST/ACK, then TFTP of ``<mac>/config.txt``,
   ``start4.elf``, ``fixup4.dat``, ``cmdline.txt``, the kernel and initramfs that config.txt names;
   - ``cmdline.txt`` with ``pinet.url=``: pinet's installer. The board runs the agent the
     initramfs it was served holds (``pinet-agent.sh``, under busybox, in the board's
     namespace: DHCP asking for option 224, plan, ``wget | tee | zstd -dc`` onto its SD card
     file with the sha256 checked, events, done), then reboots;
   - ``root=/dev/nfs``: it runs from the network (the files are fetched; nothing mounts NFS);
     the OS renews its lease;
3. no PXE answer (a local board, or one pinet does not know): the SD card. With an image on it
   the board runs its OS (and renews its lease); an empty card means trying the network again
   a few seconds later, which is how an unknown board keeps asking, and gets discovered.

Power comes from a simulated power strip: one HTTP server (``pdu`` in the config) with an
outlet per board, the kind of device pinet's webhook power driver switches:

    GET  /outlets/                 every outlet: {"outlets": [{"mac", "power", "phase"}, ...]}
    GET  /outlets/<mac>            {"mac": ..., "power": "on"|"off", "phase": ...}
    POST /outlets/<mac>/on|off|cycle

Switching off stops the board wherever it is (an install in progress is killed); a cycle is
off, ``cycle_delay`` seconds, on. With ``pinet_lab up --qemu`` the strip also has an outlet for
the QEMU x86 machine (``vm`` in the config), switched through QEMU's monitor. What every
board is doing is written, on every change, to the JSON state file ``pinet_lab status`` reads.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from . import netns
from .probe import DISCOVER, PROFILES, REQUEST, RawClient, UsageError, client_options, exchange, tftp_get

log = logging.getLogger("pinet.lab.sim")

PI_MENU = "Raspberry Pi Boot"
TFTP_BLKSIZE = 1468  # what fits an Ethernet frame; the Pi bootloader negotiates blksize too
# Timings of a lab board, in seconds: shorter than a real bootloader's, so a story takes
# seconds rather than minutes. Each can be overridden in the config's "timing".
TIMING = {
    "dhcp": 6.0,  # how long the bootloader (and the OS) waits for an OFFER, retransmitting each second
    "retry": 3.0,  # nothing to boot (no PXE answer, empty SD card): wait, then start over
    "reboot": 2.0,  # a reboot after an install, or after a failed boot
    "renew_max": 60.0,  # a running OS renews its lease at T1 = lease/2, or at least this often
    "cycle_delay": 1.0,  # a power cycle keeps the board off this long
}


class PowerChanged(Exception):  # noqa: N818 (a signal to unwind, not a fault)
    """The board lost power (or was cycled) mid-way: unwind to the top of its loop."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def mac_dashed(mac: str) -> str:
    return mac.lower().replace(":", "-")


def normalize_mac(text: str) -> str:
    digits = unquote(text).lower().replace(":", "").replace("-", "").replace(".", "")
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def sd_bootable(path: Path) -> bool:
    """A card the bootloader would try: an MBR signature and a FAT boot partition."""
    try:
        with open(path, "rb") as fh:
            mbr = fh.read(512)
    except OSError:
        return False
    if len(mbr) < 512 or mbr[510:512] != b"\x55\xaa":
        return False
    types = {mbr[446 + 16 * i + 4] for i in range(4)}
    return bool(types & {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E, 0xEF})


def initramfs_member(path: Path, name: str) -> bytes | None:
    """One file out of a gzip'd newc cpio archive (the kernel's initramfs format)."""
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    offset = 0
    while offset + 110 <= len(data) and data[offset : offset + 6] == b"070701":
        header = data[offset : offset + 110]
        size, name_size = int(header[54:62], 16), int(header[94:102], 16)
        start = offset + 110
        member = data[start : start + name_size - 1].decode("utf-8", "replace")
        body = start + name_size + (-(110 + name_size) % 4)
        if member == "TRAILER!!!":
            return None
        if member.lstrip("./") == name:
            return data[body : body + size]
        offset = body + size + (-size % 4)
    return None


class Board(threading.Thread):
    """One simulated Pi 4: its boot loop runs in its own namespace."""

    def __init__(self, sim: Simulator, spec: dict):
        super().__init__(name=f"board-{spec['mac']}", daemon=True)
        self.sim = sim
        self.mac = spec["mac"].lower()
        self.mac_raw = bytes.fromhex(self.mac.replace(":", ""))
        self.serial = int(spec["serial"], 16)
        self.ns = spec["netns"]
        self.iface = spec.get("iface", "eth0")
        self.sd = Path(spec["sd"])
        self.work = Path(spec["work"])
        self.work.mkdir(parents=True, exist_ok=True)
        self.changed = threading.Condition()
        self.powered = True
        self.generation = 0
        self.agent: subprocess.Popen | None = None
        self.state: dict = {
            "mac": self.mac,
            "serial": spec["serial"],
            "netns": self.ns,
            "sd": str(self.sd),
            "power": "on",
            "phase": "power-on",
            "detail": "",
            "ip": None,
            "boots": 0,
            "installs": 0,
            "since": now_iso(),
            "files": [],
        }

    # --- power (called from the power strip's threads) --------------------------------------

    def power(self, action: str) -> str:
        if action == "off":
            self._switch(False)
        elif action == "on":
            self._switch(True)
        elif action == "cycle":
            self._switch(False)
            time.sleep(self.sim.timing["cycle_delay"])
            self._switch(True)
        return "on" if self.powered else "off"

    def _switch(self, on: bool) -> None:
        with self.changed:
            if self.powered == on:
                return
            self.powered = on
            self.generation += 1
            self.changed.notify_all()
        log.info("%s: power %s", self.mac, "on" if on else "off")
        if not on:
            self._kill_agent()
            self.update(power="off", phase="off", detail="switched off", ip=None)
        else:
            self.update(power="on")

    def _kill_agent(self) -> None:
        agent = self.agent
        if agent is not None and agent.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(agent.pid, signal.SIGKILL)

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        netns.enter(self.ns)
        while not self.sim.stopping.is_set():
            if not self.powered:
                self.set_address(None)
                self.update(phase="off", detail="switched off", ip=None)
            with self.changed:
                while not self.powered and not self.sim.stopping.is_set():
                    self.changed.wait(1.0)
                generation = self.generation
            if self.sim.stopping.is_set():
                break
            try:
                self.boot(generation)
            except PowerChanged:
                continue
            except Exception as exc:  # a bug or a broken network: show it, and boot again
                log.exception("%s: boot failed", self.mac)
                self.update(phase="error", detail=f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(PowerChanged):
                    self.sleep(generation, self.sim.timing["reboot"])

    def check(self, generation: int) -> None:
        if self.generation != generation or not self.powered or self.sim.stopping.is_set():
            raise PowerChanged

    def sleep(self, generation: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self.changed:
            while (left := deadline - time.monotonic()) > 0:
                self.check(generation)
                self.changed.wait(min(left, 1.0))
        self.check(generation)

    def update(self, **changes) -> None:
        """Change what the state file says about this board (and write it)."""
        with self.sim.lock:
            if not self.powered and changes.get("phase", "off") != "off":
                return  # a boot step finishing after the power went: the board is off
            if "phase" in changes and changes["phase"] != self.state.get("phase"):
                changes.setdefault("since", now_iso())
                log.info("%s: %s %s", self.mac, changes["phase"], changes.get("detail", ""))
            self.state.update(changes)
            self.sim.save()

    def boot(self, generation: int) -> None:
        self.set_address(None)
        self.update(
            phase="dhcp",
            detail="bootloader: DHCP DISCOVER",
            files=[],
            ip=None,
            answer=None,
            boots=self.state["boots"] + 1,
        )
        offer, ack = self.dhcp(PROFILES["pi4"], generation, pxe_only=True)
        self.check(generation)
        if offer is None:
            self.update(answer="none")
            return self.boot_sd(generation, "no DHCP answer")
        if PI_MENU not in (offer.get("pxe_menu_text") or ""):
            self.update(answer="address only")
            return self.boot_sd(generation, "no network boot offered")
        if ack is None:
            self.update(answer="pxe, no ACK", phase="no-boot", detail="the REQUEST got no ACK; starting over")
            return self.sleep(generation, self.sim.timing["retry"])
        self.update(answer="pxe")
        return self.boot_network(generation, ack)

    def dhcp(self, profile, generation: int, *, pxe_only: bool) -> tuple[dict | None, dict | None]:
        """DISCOVER until an OFFER; REQUEST it (the Pi 4 bootloader only takes a PXE one)."""
        transport = RawClient(self.iface, self.mac_raw, broadcast_flag=False)
        try:
            xid = random.getrandbits(32)
            discover = client_options(profile, self.mac_raw, self.serial, DISCOVER)
            offer, _ = exchange(transport, xid, discover, {"OFFER"}, self.sim.timing["dhcp"])
            self.check(generation)
            if offer is None or (pxe_only and PI_MENU not in (offer.get("pxe_menu_text") or "")):
                return offer, None
            request = client_options(
                profile,
                self.mac_raw,
                self.serial,
                REQUEST,
                requested_ip=socket.inet_aton(offer["yiaddr"]),
                server_id=socket.inet_aton(offer["server_id"]) if offer.get("server_id") else None,
            )
            reply, _ = exchange(transport, xid, request, {"ACK", "NAK"}, self.sim.timing["dhcp"])
            return offer, reply if reply is not None and reply["message_type"] == "ACK" else None
        finally:
            transport.close()

    def set_address(self, reply: dict | None) -> None:
        """Configure (or, with None, clear) the interface as the bootloader's or OS's IP stack would."""
        netns.run_ip("-n", self.ns, "addr", "flush", "dev", self.iface)
        if reply is None:
            return
        mask = bytes.fromhex(reply["options"].get("1", "ffffff00"))
        prefix = sum(bin(b).count("1") for b in mask)
        netns.run_ip("-n", self.ns, "addr", "add", f"{reply['yiaddr']}/{prefix}", "dev", self.iface)
        self.update(ip=reply["yiaddr"])

    # --- network boot -----------------------------------------------------------------------

    def fetch(self, server: str, name: str, *, keep: bool = False) -> dict:
        out = self.work / name.replace("/", "_") if keep else None
        result = tftp_get(
            server,
            f"{mac_dashed(self.mac)}/{name}",
            blksize=TFTP_BLKSIZE,
            tsize=True,
            out=str(out) if out else None,
            timeout=30,
        )
        entry = {"file": name, "ok": result["ok"], "size": result.get("size")}
        if not result["ok"]:
            entry["error"] = result.get("message") or result.get("error")
        said = f"{entry['size']} bytes" if entry["ok"] else entry["error"]
        self.update(files=[*self.state["files"], entry], detail=f"TFTP {name}: {said}")
        if out is not None and not result["ok"]:
            out.unlink(missing_ok=True)
        return entry | {"path": out}

    def boot_network(self, generation: int, ack: dict) -> None:
        # Option 66 if given; else, with the PXE option matched, the server identifier (netboot.md §1.1).
        server = ack.get("tftp_server") or ack.get("server_id") or ack.get("siaddr")
        self.set_address(ack)
        self.update(phase="tftp", detail=f"TFTP from {server}", tftp_server=server)
        config = self.fetch(server, "config.txt", keep=True)
        self.check(generation)
        if not self.fetch(server, "start4.elf")["ok"]:
            self.update(phase="no-boot", detail="start4.elf is not on the TFTP server; trying the SD card")
            return self.boot_sd(generation, "no firmware on the network")
        self.fetch(server, "fixup4.dat")
        cmdline_entry = self.fetch(server, "cmdline.txt", keep=True)
        self.check(generation)
        config_text = config["path"].read_text(errors="replace") if config["ok"] else ""
        cmdline = cmdline_entry["path"].read_text(errors="replace").strip() if cmdline_entry["ok"] else ""
        kernel, initramfs = "kernel8.img", None
        for line in config_text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("kernel="):
                kernel = line.split("=", 1)[1].strip()
            elif line.startswith("initramfs "):
                initramfs = line.split()[1]
        if not self.fetch(server, kernel)["ok"]:
            self.update(phase="no-boot", detail=f"the kernel {kernel} is not on the TFTP server; starting over")
            return self.sleep(generation, self.sim.timing["retry"])
        initrd = self.fetch(server, initramfs, keep=True) if initramfs else None
        self.check(generation)
        self.update(cmdline=cmdline)
        words = cmdline.split()
        url = next((w.split("=", 1)[1] for w in words if w.startswith("pinet.url=")), None)
        if url:
            return self.install(generation, url, initrd)
        if "root=/dev/nfs" in words:
            root = next((w.split("=", 1)[1] for w in words if w.startswith("nfsroot=")), "?")
            return self.run_os(generation, "netboot", f"running from the network (NFS root {root})")
        return self.run_os(generation, "netboot", "running a network-booted kernel")

    def install(self, generation: int, url: str, initrd: dict | None) -> None:
        agent = initramfs_member(initrd["path"], "pinet-agent.sh") if initrd and initrd["ok"] else None
        if agent is None:
            self.update(phase="no-boot", detail="the installer's initramfs holds no pinet-agent.sh; rebooting")
            return self.sleep(generation, self.sim.timing["reboot"])
        script = self.work / "pinet-agent.sh"
        script.write_bytes(agent)
        script.chmod(0o755)  # udhcpc runs it as its event script
        # The kernel starts with a fresh interface: the agent asks DHCP for its address itself.
        self.set_address(None)
        self.update(phase="installing", detail=f"pinet installer: {url.split('/boot/')[0]}/boot/…", ip=None)
        env = {
            "PATH": self.sim.agent_path,
            "PINET_IFACE": self.iface,
            "PINET_TARGET": str(self.sd),
            "PINET_NO_REBOOT": "1",
            "PINET_STATE": str(self.work / "agent"),
            # What the agent reads from /proc/cmdline on a real board.
            "PINET_URL": url,
        }
        agent_log = self.work / "agent.log"
        with open(agent_log, "ab") as out:
            out.write(f"--- {now_iso()} install from {url.split('/boot/')[0]}\n".encode())
            out.flush()
            self.agent = subprocess.Popen(
                [netns.ip_binary() or "ip", "netns", "exec", self.ns, self.sim.busybox, "sh", str(script)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            while self.agent.poll() is None:
                self.sleep(generation, 0.2)
        except PowerChanged:
            self._kill_agent()
            self.agent.wait()
            raise
        code = self.agent.returncode
        last = [line for line in agent_log.read_text(errors="replace").splitlines() if line.strip()]
        if code == 0:
            self.update(
                phase="rebooting",
                detail="installed; rebooting from the SD card",
                last_install="succeeded",
                installs=self.state["installs"] + 1,
            )
        else:
            reason = last[-1] if last else f"exit {code}"
            self.update(phase="rebooting", detail=f"the install failed ({reason}); rebooting", last_install=reason)
        self.sleep(generation, self.sim.timing["reboot"])

    # --- local boot and running -------------------------------------------------------------

    def boot_sd(self, generation: int, why: str) -> None:
        self.set_address(None)
        if sd_bootable(self.sd):
            return self.run_os(generation, "sd", f"{why}: running the OS on its SD card")
        self.update(phase="no-boot", detail=f"{why}, and no bootable SD card: trying the network again")
        self.sleep(generation, self.sim.timing["retry"])

    def run_os(self, generation: int, phase: str, detail: str) -> None:
        """The booted OS: an address by DHCP, renewed at half the lease, until power changes."""
        self.update(phase=phase, detail=detail)
        while True:
            _, ack = self.dhcp(PROFILES["raspios"], generation, pxe_only=False)
            lease = 120
            if ack is not None:
                self.set_address(ack)
                lease = int(ack["options"].get("51", "00000078"), 16)
            self.sleep(generation, max(5.0, min(lease / 2, self.sim.timing["renew_max"])))


class VmOutlet:
    """The power strip's outlet for the lab's QEMU machine (``--qemu``), switched through QEMU's
    monitor (QMP): off pauses the machine, on resets it and lets it run."""

    def __init__(self, sim: Simulator, spec: dict):
        self.sim = sim
        self.mac = spec["mac"].lower()
        self.qmp = spec["qmp"]
        self.powered = True
        self.state = {"mac": self.mac, "power": "on", "phase": "running", "detail": "QEMU x86 machine", "vm": True}

    def _command(self, *names: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(self.qmp)
            stream = sock.makefile("rwb")
            stream.readline()  # the greeting
            for name in ("qmp_capabilities", *names):
                stream.write(json.dumps({"execute": name}).encode() + b"\n")
                stream.flush()
                while True:  # skip asynchronous events until the command's answer
                    answer = json.loads(stream.readline() or b"{}")
                    if "return" in answer or "error" in answer or not answer:
                        break
                if "error" in answer:
                    raise OSError(f"QMP {name}: {answer['error'].get('desc')}")

    def power(self, action: str) -> str:
        if action in ("off", "cycle"):
            self._command("stop")
            self.powered = False
        if action == "cycle":
            time.sleep(self.sim.timing["cycle_delay"])
        if action in ("on", "cycle"):
            self._command("system_reset", "cont")
            self.powered = True
        power = "on" if self.powered else "off"
        with self.sim.lock:
            self.state.update(power=power, phase="running" if self.powered else "paused", since=now_iso())
            self.sim.save()
        return power


class Simulator:
    def __init__(self, config: dict):
        self.config = config
        self.timing = TIMING | config.get("timing", {})
        self.state_path = Path(config["state"])
        self.busybox = config["busybox"]
        self.agent_path = config["agent_path"]
        self.stopping = threading.Event()
        self.lock = threading.RLock()
        self.boards = {spec["mac"].lower(): Board(self, spec) for spec in config["boards"]}
        self.vm = VmOutlet(self, config["vm"]) if config.get("vm") else None
        self.outlets: dict[str, Board | VmOutlet] = {**self.boards, **({self.vm.mac: self.vm} if self.vm else {})}

    def save(self) -> None:
        with self.lock:
            data = {
                "pid": os.getpid(),
                "updated": now_iso(),
                "pdu": self.config["pdu"],
                "boards": [board.state for board in self.boards.values()],
                "vm": self.vm.state if self.vm else None,
            }
            tmp = self.state_path.with_name(self.state_path.name + ".tmp")
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
            os.replace(tmp, self.state_path)

    def run(self) -> None:
        pdu = self.config["pdu"]
        server = ThreadingHTTPServer((pdu["ip"], pdu["port"]), PowerStrip)
        server.daemon_threads = True
        server.sim = self  # type: ignore[attr-defined]
        self.save()
        for board in self.boards.values():
            board.start()
        log.info("%d boards; power strip on http://%s:%s/outlets/", len(self.boards), pdu["ip"], pdu["port"])

        def stop(*_):
            self.stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        server.serve_forever(poll_interval=0.5)
        for board in self.boards.values():
            board._switch(False)
        deadline = time.monotonic() + 5
        for board in self.boards.values():
            board.join(timeout=max(0.1, deadline - time.monotonic()))
        self.save()
        log.info("stopped")


class PowerStrip(BaseHTTPRequestHandler):
    server_version = "pinet-lab-pdu/1"

    def log_message(self, fmt, *args) -> None:
        log.info("power strip: %s %s", self.address_string(), fmt % args)

    def _answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _board(self, parts: list[str]) -> Board | VmOutlet | None:
        return self.server.sim.outlets.get(normalize_mac(parts[1])) if len(parts) > 1 else None  # type: ignore[attr-defined]

    @staticmethod
    def _outlet(board: Board | VmOutlet) -> dict:
        return {"mac": board.mac, "power": "on" if board.powered else "off", "phase": board.state["phase"]}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if parts == ["outlets"]:
            boards = self.server.sim.outlets.values()  # type: ignore[attr-defined]
            return self._answer(200, {"outlets": [self._outlet(b) for b in boards]})
        board = self._board(parts) if parts[:1] == ["outlets"] and len(parts) == 2 else None
        if board is None:
            return self._answer(404, {"error": "no such outlet; GET /outlets/ lists them"})
        self._answer(200, self._outlet(board))

    def do_POST(self) -> None:  # noqa: N802
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        board = self._board(parts) if parts[:1] == ["outlets"] and len(parts) == 3 else None
        if board is None or parts[2] not in ("on", "off", "cycle"):
            return self._answer(404, {"error": "POST /outlets/<mac>/on|off|cycle"})
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 65536))
        try:
            self._answer(200, {"mac": board.mac, "power": board.power(parts[2])})
        except OSError as exc:  # the QEMU machine's monitor did not answer
            self._answer(503, {"error": str(exc)})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m provisioning.lab.sim CONFIG.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = json.loads(Path(argv[0]).read_text())
    try:
        Simulator(config).run()
    except UsageError as exc:  # probe.py's way of saying an interface cannot be opened
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
