#!/usr/bin/env python3
"""The client side of benchmarks/boot_storm.py: many simulated Raspberry Pi 4 boards, and an
HTTP load generator. Standard library only; boot_storm.py runs it inside the client network
namespace, never on a real interface.

    storm_boards.py boards SPEC.json     # every board of SPEC boots once; prints one JSON document
    storm_boards.py load SPEC.json       # closed-loop HTTP load on the URLs of SPEC

One raw AF_PACKET socket per link speaks for every board on it, the way boot firmware talks
before it has an address: DHCP from 0.0.0.0 with the board's MAC, then TFTP from the address
the board was given, with the board's MAC as the Ethernet source (the socket also answers ARP
for those addresses). The installer's HTTP request for its plan goes through the namespace's
own TCP stack, from the client namespace's address on the web link: one process cannot run a
TCP stack per board, and the plan endpoint does not look at the source address.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import random
import socket
import struct
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provisioning.tests.probe import (  # noqa: E402
    BROADCAST_IP,
    BROADCAST_MAC,
    DISCOVER,
    PACKET_ADD_MEMBERSHIP,
    PACKET_MR_PROMISC,
    PACKET_OUTGOING,
    PROFILES,
    REQUEST,
    SOL_PACKET,
    ZERO_IP,
    build_bootp,
    client_options,
    decode_bootp,
    udp_frame,
)

ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33
# Retransmission as the real clients do it: the Pi 4 bootloader's DHCP_REQ_TIMEOUT default
# (4 s), busybox udhcpc's default (3 s); TFTP packets after 1 s.
FIRMWARE_DHCP_RETRY_S = 4.0
INSTALLER_DHCP_RETRY_S = 3.0
TFTP_RETRY_S = 1.0
TFTP_RETRIES = 5
TFTP_BLKSIZE = 1468  # fills a 1500-byte MTU
# Give up on a phase after this long (the bootloader's DHCP_TIMEOUT is 45 s, TFTP_FILE_TIMEOUT 30 s).
PHASE_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 30.0
ZERO_ADDRESS = socket.inet_ntoa(ZERO_IP)


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


class Board:
    def __init__(self, spec: dict, link: Link):
        self.spec = spec
        self.link = link
        self.mac = mac_bytes(spec["mac"])
        self.serial = int(spec["serial"], 16)
        self.ip = b""
        self.ports = itertools.count(random.randrange(20000, 40000))
        self.result: dict = {"id": spec["id"], "site": spec["site"], "ok": False}
        self.retransmits = 0


class Link:
    """One client-side veth: a raw socket that sends and receives for all boards on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, spec: dict):
        self.loop = loop
        self.iface = spec["iface"]
        self.server_ip = socket.inet_aton(spec["server_ip"])
        self.server_mac = BROADCAST_MAC  # until the first DHCP reply tells us
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((self.iface, ETH_P_ALL))
        # Frames for the boards' MACs are not the interface's own: listen promiscuously.
        mreq = struct.pack("iHH8s", socket.if_nametoindex(self.iface), PACKET_MR_PROMISC, 0, b"")
        self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        self.sock.setblocking(False)
        self.boards = [Board(b, self) for b in spec["boards"]]
        self.by_ip: dict[bytes, Board] = {}
        self.dhcp_waiters: dict[tuple[bytes, int], tuple[asyncio.Future, set[str]]] = {}
        self.udp: dict[tuple[bytes, int], object] = {}
        self.send_failures = 0
        loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def send(self, frame: bytes) -> None:
        try:
            self.sock.send(frame)
        except OSError:
            self.send_failures += 1  # a full queue: the retransmission covers it, as on a wire

    def _readable(self) -> None:
        for _ in range(512):
            try:
                frame, address = self.sock.recvfrom(65535)
            except BlockingIOError:
                return
            if address[2] == PACKET_OUTGOING:
                continue
            now = time.monotonic()
            kind = frame[12:14]
            if kind == b"\x08\x06":
                self._arp(frame)
            elif kind == b"\x08\x00" and frame[23] == socket.IPPROTO_UDP:
                ihl = (frame[14] & 0x0F) * 4
                udp = 14 + ihl
                sport, dport, length = struct.unpack_from("!HHH", frame, udp)
                payload = frame[udp + 8 : udp + length]
                if dport == 68:
                    self._dhcp(frame, payload, now)
                else:
                    handler = self.udp.get((frame[30:34], dport))
                    if handler is not None:
                        handler(frame[26:30], sport, payload)

    def _arp(self, frame: bytes) -> None:
        # Answer "who has <board address>" for the boards, as their own network stack would.
        if frame[20:22] != b"\x00\x01":
            return
        target = frame[38:42]
        board = self.by_ip.get(target)
        if board is None:
            return
        sender_mac, sender_ip = frame[22:28], frame[28:32]
        arp = b"\x00\x01\x08\x00\x06\x04\x00\x02" + board.mac + target + sender_mac + sender_ip
        self.send(sender_mac + board.mac + b"\x08\x06" + arp)

    def _dhcp(self, frame: bytes, payload: bytes, now: float) -> None:
        if len(payload) < 240:
            return
        key = (payload[28:34], int.from_bytes(payload[4:8], "big"))
        waiter = self.dhcp_waiters.get(key)
        if waiter is None or waiter[0].done():
            return
        reply = decode_bootp(payload)
        if reply is not None and reply["message_type"] in waiter[1]:
            self.server_mac = frame[6:12]
            waiter[0].set_result((reply, now))

    async def dhcp(
        self, board: Board, xid: int, options, wanted: set[str], retry_s: float, deadline: float
    ) -> dict | None:
        """Broadcast one DHCP message and retransmit it until a wanted reply arrives."""
        future = self.loop.create_future()
        key = (board.mac, xid)
        self.dhcp_waiters[key] = (future, wanted)
        frame = udp_frame(board.mac, BROADCAST_MAC, ZERO_IP, BROADCAST_IP, 68, 67, build_bootp(xid, board.mac, options))
        try:
            first = True
            while True:
                if not first:
                    board.retransmits += 1
                first = False
                self.send(frame)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                try:
                    reply, _ = await asyncio.wait_for(asyncio.shield(future), min(retry_s, remaining))
                    return reply
                except TimeoutError:
                    if time.monotonic() >= deadline:
                        return None
        finally:
            del self.dhcp_waiters[key]

    def tftp(self, board: Board, server: bytes, path: str, deadline: float) -> asyncio.Future:
        """Read one file over TFTP from the board's address (RFC 1350 + blksize/tsize)."""
        return TftpRead(self, board, server, path, deadline).future


class TftpRead:
    def __init__(self, link: Link, board: Board, server: bytes, path: str, deadline: float):
        self.link, self.board, self.server, self.deadline = link, board, server, deadline
        self.future = link.loop.create_future()
        self.port = next(board.ports)
        self.key = (board.ip, self.port)
        self.peer: int | None = None
        self.blksize = 512
        self.expected = 1
        self.data = bytearray()
        self.retries = 0
        link.udp[self.key] = self.on_packet
        rrq = b"\x00\x01" + path.encode() + b"\0octet\0blksize\0" + str(TFTP_BLKSIZE).encode() + b"\0tsize\0" + b"0\0"
        self.last = (rrq, 69)
        self.timer = None
        self._send(*self.last)

    def _send(self, payload: bytes, port: int) -> None:
        board = self.board
        self.link.send(udp_frame(board.mac, self.link.server_mac, board.ip, self.server, self.port, port, payload))
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.link.loop.call_later(TFTP_RETRY_S, self.on_timeout)

    def finish(self, result: dict) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.link.udp.pop(self.key, None)
        if not self.future.done():
            self.future.set_result(result)

    def on_timeout(self) -> None:
        self.retries += 1
        self.board.retransmits += 1
        if self.retries > TFTP_RETRIES or time.monotonic() > self.deadline:
            self.finish({"ok": False, "error": "timeout", "size": len(self.data)})
            return
        self._send(*self.last)

    def on_packet(self, source: bytes, sport: int, packet: bytes) -> None:
        if source != self.server or len(packet) < 4:
            return
        if self.peer is None:
            self.peer = sport  # RFC 1350: the server's new port is the transfer ID
        elif sport != self.peer:
            return
        opcode = packet[1]
        if opcode == 6 and self.expected == 1:  # OACK
            fields = packet[2:].split(b"\0")
            acked = {fields[i].decode().lower(): fields[i + 1].decode() for i in range(0, len(fields) - 1, 2)}
            self.blksize = int(acked.get("blksize", 512))
            self.retries = 0
            self.last = (b"\x00\x04\x00\x00", self.peer)
            self._send(*self.last)
        elif opcode == 3:  # DATA
            block = struct.unpack_from("!H", packet, 2)[0]
            if block == self.expected & 0xFFFF:
                chunk = packet[4:]
                self.data += chunk
                self.expected += 1
                self.retries = 0
                self.last = (b"\x00\x04" + packet[2:4], self.peer)
                if len(chunk) < self.blksize:
                    self.link.send(
                        udp_frame(
                            self.board.mac, self.link.server_mac, self.board.ip, self.server, self.port, self.peer,
                            self.last[0],
                        )
                    )  # fmt: skip
                    self.finish({"ok": True, "data": bytes(self.data)})
                else:
                    self._send(*self.last)
        elif opcode == 5:  # ERROR
            message = packet[4:].split(b"\0", 1)[0].decode("utf-8", "replace")
            self.finish({"ok": False, "error": f"TFTP error {packet[3]}: {message}"})


async def http_get(url: str, timeout: float = HTTP_TIMEOUT_S) -> tuple[int, bytes]:
    """GET with a fresh connection (gunicorn's sync workers close it after each response)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")

    async def fetch():
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        try:
            writer.write(
                f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: pinet-storm\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            data = await reader.read()
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body

    return await asyncio.wait_for(fetch(), timeout)


def ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)


async def boot(board: Board, spec: dict, start_at: float) -> dict:
    """One board's network boot: firmware DORA, its TFTP files, the installer's DORA (asking
    for option 224), then the installer's GET of its plan from that URL."""
    link, me, result = board.link, board.spec, board.result
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    t0 = time.monotonic()
    result["power_on_s"] = round(t0 - spec["_epoch"], 3)
    phase = "dhcp"
    try:
        # 1. The bootloader: DISCOVER, OFFER with "Raspberry Pi Boot", REQUEST, ACK.
        pi4 = PROFILES["pi4"]
        xid = random.getrandbits(32)
        deadline = t0 + PHASE_TIMEOUT_S
        offer = await link.dhcp(
            board,
            xid,
            client_options(pi4, board.mac, board.serial, DISCOVER),
            {"OFFER"},
            FIRMWARE_DHCP_RETRY_S,
            deadline,
        )
        if offer is None:
            raise Failure("no OFFER")
        if offer["yiaddr"] != me["ip"]:
            raise Failure(f"offered {offer['yiaddr']}, reserved {me['ip']}")
        if offer["pxe_menu_text"] != "Raspberry Pi Boot":
            raise Failure(f"no PXE answer (option 43 menu {offer['pxe_menu_text']!r})")
        # The Pi takes option 66 if present, else the next-server field, else the server identifier.
        server = offer["tftp_server"] or (offer["siaddr"] if offer["siaddr"] != ZERO_ADDRESS else offer["server_id"])
        request = client_options(
            pi4,
            board.mac,
            board.serial,
            REQUEST,
            requested_ip=socket.inet_aton(offer["yiaddr"]),
            server_id=socket.inet_aton(offer["server_id"]),
        )
        ack = await link.dhcp(board, xid, request, {"ACK", "NAK"}, FIRMWARE_DHCP_RETRY_S, deadline)
        if ack is None or ack["message_type"] != "ACK":
            raise Failure("no ACK" if ack is None else "NAK")
        board.ip = socket.inet_aton(ack["yiaddr"])
        link.by_ip[board.ip] = board
        t1 = time.monotonic()
        result["dhcp_ms"] = ms(t0, t1)

        # 2. TFTP: the Pi 4 file sequence under its MAC prefix (EEPROM TFTP_PREFIX=2).
        phase = "tftp"
        prefix = me["mac"].replace(":", "-")
        for name in spec["files"]:
            got = await link.tftp(board, socket.inet_aton(server), f"{prefix}/{name}", time.monotonic() + 30)
            if not got["ok"]:
                raise Failure(f"{name}: {got['error']}")
            data = got["data"]
            wanted = spec["digests"].get(name)
            if wanted and hashlib.sha256(data).hexdigest() != wanted:
                raise Failure(f"{name}: not the installer's file ({len(data)} bytes)")
            if name == "cmdline.txt" and f"pinet.url={me['url']}" not in data.decode():
                raise Failure("cmdline.txt does not carry the board's boot URL")
            if name == "config.txt" and f"# pinet: {me['hostname']} (install)" not in data.decode():
                raise Failure("config.txt is not this board's")
        t2 = time.monotonic()
        result["tftp_ms"] = ms(t1, t2)

        # 3. The installer's udhcpc: a new DORA that asks for option 224, the boot URL.
        phase = "installer_dhcp"
        installer = PROFILES["installer"]
        xid = random.getrandbits(32)
        deadline = t2 + PHASE_TIMEOUT_S
        offer = await link.dhcp(
            board,
            xid,
            client_options(installer, board.mac, board.serial, DISCOVER),
            {"OFFER"},
            INSTALLER_DHCP_RETRY_S,
            deadline,
        )
        if offer is None:
            raise Failure("no OFFER")
        request = client_options(
            installer,
            board.mac,
            board.serial,
            REQUEST,
            requested_ip=socket.inet_aton(offer["yiaddr"]),
            server_id=socket.inet_aton(offer["server_id"]),
        )
        ack = await link.dhcp(board, xid, request, {"ACK", "NAK"}, INSTALLER_DHCP_RETRY_S, deadline)
        if ack is None or ack["message_type"] != "ACK":
            raise Failure("no ACK" if ack is None else "NAK")
        url = ack["boot_url"] or offer["boot_url"]
        if url != me["url"]:
            raise Failure(f"option 224 is {url!r}, not the board's boot URL")
        t3 = time.monotonic()
        result["installer_dhcp_ms"] = ms(t2, t3)

        # 4. The installer fetches its plan.
        phase = "http"
        status, body = await http_get(url)
        if status != 200:
            raise Failure(f"HTTP {status}: {body[:200]!r}")
        plan = json.loads(body)
        if plan.get("job") != me["job"] or plan.get("hostname") != me["hostname"]:
            raise Failure("the plan is not this board's")
        t4 = time.monotonic()
        result["http_ms"] = ms(t3, t4)
        result["total_ms"] = ms(t0, t4)
        result["ok"] = True
    except Failure as exc:
        result.update(failed_phase=phase, error=str(exc))
    except (OSError, TimeoutError, ValueError) as exc:
        result.update(failed_phase=phase, error=f"{type(exc).__name__}: {exc}")
    result["end_s"] = round(time.monotonic() - spec["_epoch"], 3)
    result["retransmits"] = board.retransmits
    return result


class Failure(Exception):
    pass


async def run_boards(spec: dict) -> dict:
    loop = asyncio.get_running_loop()
    links = [Link(loop, link) for link in spec["links"]]
    rng = random.Random(spec["seed"])
    boards = [board for link in links for board in link.boards]
    # Power-on times spread at random over the window, as when a rack's PDU comes back.
    offsets = sorted(rng.uniform(0, spec["window"]) for _ in boards)
    rng.shuffle(boards)
    epoch = time.monotonic() + 0.3
    spec["_epoch"] = epoch
    cpu = time.process_time()
    try:
        results = await asyncio.gather(*(boot(b, spec, epoch + off) for b, off in zip(boards, offsets, strict=True)))
    finally:
        for link in links:
            link.close()
    return {
        "boards": sorted(results, key=lambda r: r["id"]),
        "send_failures": sum(link.send_failures for link in links),
        # This process shares the cores with the daemons: a busy client delays its own timings.
        "client_cpu_share": round((time.process_time() - cpu) / max(1e-9, time.monotonic() - epoch), 2),
    }


async def run_load(spec: dict) -> dict:
    """Closed loop: ``clients`` connections at a time, each sending its next request as soon as
    the last one is answered, for ``duration`` seconds per round."""
    out = {}
    for name in spec["order"]:
        out[name] = {"latencies_ms": [], "statuses": {}, "elapsed_s": 0.0, "client_cpu_s": 0.0}
    counter = itertools.count()

    async def measure(name: str, seconds: float, record: bool) -> None:
        urls = spec["urls"][name]
        stop = time.monotonic() + seconds
        latencies, statuses = [], {}

        async def client():
            while time.monotonic() < stop:
                url = urls[next(counter) % len(urls)]
                start = time.perf_counter()
                try:
                    status, _ = await http_get(url, timeout=10)
                except (OSError, TimeoutError, ValueError, IndexError):
                    status = 0
                latencies.append((time.perf_counter() - start) * 1000)
                statuses[status] = statuses.get(status, 0) + 1

        began, cpu = time.monotonic(), time.process_time()
        await asyncio.gather(*(client() for _ in range(spec["clients"])))
        if record:
            entry = out[name]
            entry["latencies_ms"] += latencies
            entry["elapsed_s"] += time.monotonic() - began
            # The load generator shares the machine's cores with the server: say how much it took.
            entry["client_cpu_s"] += time.process_time() - cpu
            for status, count in statuses.items():
                entry["statuses"][str(status)] = entry["statuses"].get(str(status), 0) + count

    for name in spec["order"]:
        await measure(name, spec["warmup"], record=False)
    # Interleaved rounds, so a noisy neighbour on a shared machine hits both alike.
    for _ in range(spec["rounds"]):
        for name in spec["order"]:
            await measure(name, spec["duration"] / spec["rounds"], record=True)
    return out


def main() -> int:
    command, path = sys.argv[1], sys.argv[2]
    spec = json.loads(Path(path).read_text())
    result = asyncio.run(run_boards(spec) if command == "boards" else run_load(spec))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
