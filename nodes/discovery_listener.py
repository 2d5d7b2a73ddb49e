"""The discovery listener behind ``manage.py pinet_discover``: hears the DHCP requests on a
site's interface and records the boards pinet does not know.

Why a packet socket: the site's DHCP server (dnsmasq or Kea) owns UDP port 67 on the same
host. dnsmasq's lease script and Kea's run_script hook fire on leases only, never on a
DISCOVER, and never in proxy mode or for a Pi 3, which never requests (netboot.md §3, §4).
A second UDP socket on port 67 (PiServer's way) is worse than it looks: with SO_REUSEADDR it
gets the broadcasts but not the relayed unicast, and with SO_REUSEPORT the kernel hands each
relayed request to only one of the sockets, so the DHCP server stops answering relayed boards
(both measured in a namespace with dnsmasq 2.90). An AF_PACKET socket gets a copy of every
frame, broadcast or relayed, and takes nothing from the DHCP server. It needs CAP_NET_RAW; a
classic BPF filter keeps everything but IPv4 UDP to port 67 in the kernel.

Bounded by design: at most ``memory`` MACs are remembered (least recently heard forgotten
first), one MAC causes at most one write per ``write_interval`` (the requests in between are
counted and written with the next one), all writes together stay under
``writes_per_second``, and the service refuses new boards past PINET_DISCOVERY_MAX_NEW per
site. Whether the site wants discovery is re-read every ``refresh`` seconds; while it is off
nothing is written at all.
"""

from __future__ import annotations

import ctypes
import logging
import math
import socket
import struct
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from .discovery import Sighting, parse_frame
from .discovery_services import DiscoveryFull, discovery_record

log = logging.getLogger("pinet.discovery")

ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
# Seconds between two messages about the same kind of dropped sightings.
DROP_LOG_INTERVAL = 60.0

# tcpdump -dd 'ip and udp dst port 67' (unfragmented; the frame starts at the Ethernet header).
UDP_DPORT_67 = (
    (0x28, 0, 0, 0x0000000C),  # ldh [12]              ethertype
    (0x15, 0, 8, 0x00000800),  # jeq #0x800             IPv4, else drop
    (0x30, 0, 0, 0x00000017),  # ldb [23]              protocol
    (0x15, 0, 6, 0x00000011),  # jeq #17                UDP, else drop
    (0x28, 0, 0, 0x00000014),  # ldh [20]              flags + fragment offset
    (0x45, 4, 0, 0x00001FFF),  # jset #0x1fff           a later fragment: drop
    (0xB1, 0, 0, 0x0000000E),  # ldxb 4*([14]&0xf)     IP header length
    (0x48, 0, 0, 0x00000010),  # ldh [x+16]            UDP destination port
    (0x15, 0, 1, 0x00000043),  # jeq #67                accept, else drop
    (0x06, 0, 0, 0x00040000),  # ret #262144
    (0x06, 0, 0, 0x00000000),  # ret #0
)


class PacketSource:
    """An AF_PACKET socket copying IPv4 UDP frames to port 67 off one interface (or all: None)."""

    def __init__(self, interface: str | None):
        self.interface = interface
        # For one interface, protocol 0 receives nothing until bind() names one: frames from
        # other interfaces cannot queue up before the filter and the binding are in place.
        protocol = 0 if interface else socket.htons(ETH_P_IP)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, protocol)
        try:
            program = b"".join(struct.pack("HBBI", *insn) for insn in UDP_DPORT_67)
            buffer = ctypes.create_string_buffer(program, len(program))
            fprog = struct.pack("HP", len(UDP_DPORT_67), ctypes.addressof(buffer))
            self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            # Room for a burst (a rack powering on at once) while a database write is slow.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            if interface:
                self.sock.bind((interface, ETH_P_IP))
        except OSError:
            self.sock.close()
            raise

    def receive(self, timeout: float) -> bytes | None:
        """One frame that arrived on the interface, or None after ``timeout`` seconds."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            frame, address = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        # This host's own transmissions (a relay agent on the boot server) are not requests.
        return None if address[2] == PACKET_OUTGOING else frame

    def close(self) -> None:
        self.sock.close()


@dataclass
class _Heard:
    """What the listener remembers about one MAC between writes."""

    last_write: float = -math.inf
    pending: int = 0
    sighting: Sighting | None = None
    seen_at: datetime | None = None


class DiscoveryListener:
    """The listener's state and decisions; ``run`` drives it from a PacketSource. Tests call
    ``handle``/``flush`` with their own clock."""

    def __init__(
        self,
        *,
        site,
        write_interval: float,
        writes_per_second: int,
        memory: int,
        refresh: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = timezone.now,
        record: Callable | None = None,
    ):
        self.site = site
        self.write_interval = float(write_interval)
        self.writes_per_second = max(1, int(writes_per_second))
        self.memory = max(1, int(memory))
        self.refresh_interval = float(refresh)
        self.clock = clock
        self.wall = wall
        self.record = record or discovery_record
        self.enabled = bool(site.discovery_enabled)
        self.heard: OrderedDict[str, _Heard] = OrderedDict()
        self.tokens = float(self.writes_per_second)
        self.tokens_at = clock()
        self.next_refresh = clock() + self.refresh_interval
        self.stats: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._drop_logged: dict[str, float] = {}

    # --- decisions --------------------------------------------------------------------------

    def handle_frame(self, frame: bytes) -> None:
        sighting = parse_frame(frame)
        if sighting is None:
            self.stats["unparsed"] += 1
            return
        self.handle(sighting)

    def handle(self, sighting: Sighting) -> None:
        """Count one request; write it now if this MAC is due and the global budget allows."""
        now = self.clock()
        if now >= self.next_refresh:
            self.refresh()
        if not self.enabled:
            self.stats["disabled"] += 1
            return
        self.stats["heard"] += 1
        entry = self.heard.get(sighting.mac)
        if entry is None:
            while len(self.heard) >= self.memory:
                _, forgotten = self.heard.popitem(last=False)
                if forgotten.pending:
                    self._drop("forgotten", forgotten.pending, "more MACs asking at once than PINET_DISCOVERY_MEMORY")
            entry = self.heard[sighting.mac] = _Heard()
        else:
            self.heard.move_to_end(sighting.mac)
        entry.pending += 1
        entry.seen_at = self.wall()
        # Keep the request that says most: a later one without the PXE options (a REQUEST)
        # must not replace a DISCOVER that identified the board.
        if entry.sighting is None or sighting.netboot or not entry.sighting.netboot:
            entry.sighting = sighting
        if now - entry.last_write >= self.write_interval:
            self._write(sighting.mac, entry, now)

    def flush(self, *, everything: bool = False) -> None:
        """Write the counts held back by the per-MAC interval once it has passed (all of them
        when ``everything``), as far as the global budget allows."""
        now = self.clock()
        for mac, entry in list(self.heard.items()):
            if entry.pending and (everything or now - entry.last_write >= self.write_interval):
                if not self._write(mac, entry, now):
                    break

    def refresh(self) -> None:
        """Re-read the site: discovery may have been switched on or off since."""
        self.next_refresh = self.clock() + self.refresh_interval
        try:
            self.site.refresh_from_db(fields=["discovery_enabled", "slug"])
        except DatabaseError as exc:
            log.warning("cannot re-read site %s (keeping discovery %s): %s", self.site.slug, self._onoff(), exc)
            close_old_connections()
            return
        if self.site.discovery_enabled != self.enabled:
            self.enabled = self.site.discovery_enabled
            log.info("discovery is now %s for site %s", self._onoff(), self.site.slug)
            if not self.enabled:
                self.heard.clear()

    def _onoff(self) -> str:
        return "on" if self.enabled else "off"

    def _take_token(self, now: float) -> bool:
        self.tokens = min(float(self.writes_per_second), self.tokens + (now - self.tokens_at) * self.writes_per_second)
        self.tokens_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def _write(self, mac: str, entry: _Heard, now: float) -> bool:
        """Record the entry's pending requests; False when the global budget is spent (they
        stay pending for a later flush)."""
        if not self._take_token(now):
            self.stats["deferred"] += 1
            return False
        count, entry.pending, entry.last_write = entry.pending, 0, now
        try:
            self.record(site=self.site, sighting=entry.sighting, count=count, seen_at=entry.seen_at)
        except DiscoveryFull as exc:
            self._drop("full", count, str(exc))
        except DatabaseError as exc:
            # The database went away (a restart): keep the count for the next try.
            entry.pending += count
            self.stats["db_errors"] += 1
            log.warning("cannot record %s: %s", mac, exc)
            close_old_connections()
        else:
            self.stats["writes"] += 1
        return True

    def _drop(self, kind: str, count: int, why: str) -> None:
        self.stats[f"dropped_{kind}"] += count
        self._dropped[kind] += count
        now = self.clock()
        if now - self._drop_logged.get(kind, -math.inf) >= DROP_LOG_INTERVAL:
            log.warning("dropped %d sightings: %s", self._dropped[kind], why)
            self._dropped[kind] = 0
            self._drop_logged[kind] = now

    # --- the loop -----------------------------------------------------------------------------

    def run(self, source, stop: threading.Event, *, poll: float = 0.5, stop_budget: float = 2.0) -> None:
        """Receive and record until ``stop`` is set; a malformed packet or a bug in handling
        one is logged and skipped, never fatal."""
        next_flush = self.clock() + 1.0
        while not stop.is_set():
            frame = source.receive(poll)
            if frame is not None:
                try:
                    self.handle_frame(frame)
                except Exception:
                    self.stats["errors"] += 1
                    log.exception("could not handle a %d-byte frame; skipped", len(frame))
            now = self.clock()
            if now >= self.next_refresh:
                self.refresh()
            if now >= next_flush:
                next_flush = now + 1.0
                self.flush()
        # On the way out, write what is held back, within a bounded time (systemd is waiting).
        deadline = self.clock() + stop_budget
        while any(entry.pending for entry in self.heard.values()) and self.clock() < deadline:
            self.flush(everything=True)
            time.sleep(0.05)
        log.info("stopped: %s", ", ".join(f"{k} {v}" for k, v in sorted(self.stats.items())) or "nothing heard")
