#!/usr/bin/env python3
"""A DHCP and TFTP client that imitates network-boot firmware (Raspberry Pi, PXE ROMs, iPXE):
the tests' probe, and the packet code of pinet_lab's simulated boards (``sim.py``).

Run it inside a test network namespace with ``ip netns exec <ns> python3 probe.py ...``; it uses
only the standard library. Every subcommand prints one JSON object on stdout and exits 0; a usage
error prints ``{"error": ...}`` and exits 1.

    probe.py dhcp --iface IF --mac MAC --profile pi4 [--request] [--timeout S]
                  [--giaddr A --server-ip IP [--circuit-id V] [--remote-id V]] [--client-id HEX] [--serial HEX]
    probe.py dhcp-watch --iface IF --mac MAC --profile pi4 --seconds S --interval MS
    probe.py discover --iface IF --mac MAC --profile pi4 [--count N] [--serial HEX] [--revision HEX]
                  [--giaddr A --server-ip IP [--circuit-id V] [--remote-id V]]   (send only, no answer awaited)
    probe.py garbage --iface IF [--count N] [--seed N]   (malformed requests to UDP port 67)
    probe.py tftp --server IP --file PATH [--blksize N] [--tsize] [--out FILE] [--timeout S]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import socket
import struct
import sys
import time
from dataclasses import dataclass

ETH_P_IP = 0x0800
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_OUTGOING = 4
BROADCAST_MAC = b"\xff" * 6
ZERO_IP = bytes(4)
BROADCAST_IP = b"\xff" * 4
MAGIC_COOKIE = b"\x63\x82\x53\x63"
FLAG_BROADCAST = 0x8000

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MESSAGE_NAMES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}

# A real client retransmits; so do we, with the same xid, so one lost frame does not fail a test.
RETRANSMIT_S = 1.0
# dhcp-watch counts a DISCOVER as answered when its OFFER arrives within this window.
ANSWER_WINDOW_S = 1.0

PI_BOARD_REVISION = 0x00C03111  # Pi 4B rev 1.1, 4 GB
PI5_BOARD_REVISION = 0x00D04170  # Pi 5 rev 1.0, 8 GB
PI_PRL = (1, 3, 43, 60, 66, 67, *range(128, 136))
PXE_PRL = (1, 3, 43, 60, 66, 67)
# iPXE's dhcp_request_options_data (src/net/udp/dhcp.c); it never asks for 224.
IPXE_PRL = (1, 3, 6, 7, 12, 15, 17, 26, 42, 43, 60, 66, 67, 119, 121, *range(128, 136), 175, 203)
# dhcpcd on Raspberry Pi OS: address, router, DNS, names, MTU, lease and renewal times.
OS_PRL = (1, 3, 6, 12, 15, 26, 28, 51, 58, 59)
# Option 175 is iPXE's encapsulated feature list; any small valid TLV content does.
IPXE_ENCAP = bytes.fromhex("b105018086100e")

VENDOR_BIOS = "PXEClient:Arch:00000:UNDI:002001"
VENDOR_UEFI_X64 = "PXEClient:Arch:00007:UNDI:003016"
VENDOR_UEFI_ARM64 = "PXEClient:Arch:00011:UNDI:003016"
UNDI_2_1 = b"\x01\x02\x01"
UNDI_3_16 = b"\x01\x03\x10"


@dataclass(frozen=True)
class Profile:
    vendor_class: str
    arch: int
    undi: bytes
    prl: tuple[int, ...]
    guid: str  # "rpi" (Pi 4/5 default layout), "rpi-old" (serial repeated), "rpi3b" (constant), "uuid", "none"
    fourcc: bytes = b""
    revision: int = PI_BOARD_REVISION
    user_class: bytes | None = None
    encapsulated: bytes | None = None
    sends_request: bool = True


PROFILES: dict[str, Profile] = {
    # The Pi claims to be an x86 BIOS PXE client (arch 0); only option 97 and the OUI give it away.
    "pi4": Profile(VENDOR_BIOS, 0, UNDI_2_1, PI_PRL, "rpi", fourcc=b"RPi4"),
    "pi5": Profile(VENDOR_BIOS, 0, UNDI_2_1, PI_PRL, "rpi", fourcc=b"RPi5", revision=PI5_BOARD_REVISION),
    # The Pi 3 boot ROM takes the OFFER and goes straight to TFTP: it never sends a REQUEST.
    # "pi3" is the 3B+ (its serial four times in option 97), "pi3b" the 3B ("D" sixteen times).
    "pi3": Profile(VENDOR_BIOS, 0, UNDI_2_1, PI_PRL, "rpi-old", sends_request=False),
    "pi3b": Profile(VENDOR_BIOS, 0, UNDI_2_1, PI_PRL, "rpi3b", sends_request=False),
    "x86-bios": Profile(VENDOR_BIOS, 0, UNDI_2_1, PXE_PRL, "uuid"),
    "x86-uefi": Profile(VENDOR_UEFI_X64, 7, UNDI_3_16, PXE_PRL, "uuid"),
    "arm64-uefi": Profile(VENDOR_UEFI_ARM64, 11, UNDI_3_16, PXE_PRL, "uuid"),
    # iPXE sends its user class raw, without the RFC 3004 length prefix.
    "ipxe-bios": Profile(VENDOR_BIOS, 0, UNDI_2_1, IPXE_PRL, "uuid", user_class=b"iPXE", encapsulated=IPXE_ENCAP),
    # pinet's installer: busybox udhcpc asked for option 224 (-O 224), the boot URL.
    "installer": Profile("udhcp 1.35.0", 0, b"", (1, 3, 6, 12, 15, 28, 42, 224), "none"),
    "ipxe-efi": Profile(VENDOR_UEFI_X64, 7, UNDI_3_16, IPXE_PRL, "uuid", user_class=b"iPXE", encapsulated=IPXE_ENCAP),
    # A booted Raspberry Pi OS: dhcpcd renewing its lease, no PXE options.
    "raspios": Profile("dhcpcd-9.4.1:Linux-6.6.51-v8+:aarch64:BCM2835", 0, b"", OS_PRL, "none"),
}


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    # argparse exits 2 with text on stderr; callers parse stdout as JSON, so report errors there.
    def error(self, message: str):
        raise UsageError(message)


# --- small codecs -------------------------------------------------------------------------------


def parse_mac(text: str) -> bytes:
    digits = text.replace(":", "").replace("-", "").replace(".", "")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raw = b""
    if len(raw) != 6:
        raise UsageError(f"not a MAC address: {text!r}")
    return raw


def format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_ip(text: str) -> bytes:
    try:
        return socket.inet_aton(text)
    except OSError:
        raise UsageError(f"not an IPv4 address: {text!r}") from None


def parse_hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text.replace(":", ""))
    except ValueError:
        raise UsageError(f"{what} must be hex: {text!r}") from None


def parse_agent_value(text: str) -> bytes:
    # Switches put binary (VLAN/port tuples) as well as text into option 82, so allow both.
    if text.startswith("hex:"):
        digits = text[4:]
        if digits and len(digits) % 2 == 0:
            try:
                return bytes.fromhex(digits)
            except ValueError:
                pass
    return text.encode()


def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def encode_options(options: list[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    for code, value in options:
        # RFC 3396: a value longer than 255 bytes is split into consecutive instances.
        chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [b""]
        for chunk in chunks:
            out += bytes((code, len(chunk))) + chunk
    return bytes(out)


def decode_options(data: bytes, into: dict[int, bytearray] | None = None) -> dict[int, bytearray]:
    options = into if into is not None else {}
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0:
            i += 1
            continue
        if code == 255 or i + 1 >= len(data):
            break
        length = data[i + 1]
        # Repeated instances of one option are concatenated (RFC 3396).
        options.setdefault(code, bytearray()).extend(data[i + 2 : i + 2 + length])
        i += 2 + length
    return options


def text_of(value: bytes | None) -> str | None:
    if value is None:
        return None
    return bytes(value).rstrip(b"\0").decode("utf-8", "replace")


def pxe_menu_text(option43: bytes | None) -> str | None:
    if not option43:
        return None
    sub = decode_options(bytes(option43))
    menu = sub.get(9)
    # PXE BOOT_MENU entry: 2-byte boot server type, 1-byte text length, text.
    if not menu or len(menu) < 3:
        return None
    return bytes(menu[3 : 3 + menu[2]]).decode("utf-8", "replace")


# --- DHCP packets --------------------------------------------------------------------------------


def client_guid(profile: Profile, mac: bytes, serial: int, revision: int | None = None) -> bytes:
    if profile.guid == "rpi":
        # Pi 4/5 bootloader layout: FourCC, board revision and serial little-endian like the FourCC.
        # The low four MAC bytes are kept in wire order.
        revision = profile.revision if revision is None else revision
        return b"\x00" + profile.fourcc + struct.pack("<I", revision) + mac[2:] + struct.pack("<I", serial)
    if profile.guid == "rpi-old":
        return b"\x00" + struct.pack("<I", serial) * 4
    if profile.guid == "rpi3b":
        # The Pi 3B ROM's constant GUID (boot-net.adoc tcpdump: 0.68.68.68...).
        return b"\x00" + b"D" * 16
    return b"\x00" + hashlib.sha256(b"pinet-probe-uuid" + mac).digest()[:16]


def client_options(
    profile: Profile,
    mac: bytes,
    serial: int,
    message_type: int,
    *,
    client_id: bytes | None = None,
    requested_ip: bytes | None = None,
    server_id: bytes | None = None,
    revision: int | None = None,
) -> list[tuple[int, bytes]]:
    options: list[tuple[int, bytes]] = [(53, bytes((message_type,)))]
    if client_id is not None:
        options.append((61, client_id))
    if requested_ip is not None:
        options.append((50, requested_ip))
    if server_id is not None:
        options.append((54, server_id))
    options.append((55, bytes(profile.prl)))
    options.append((60, profile.vendor_class.encode()))
    if profile.guid == "none":
        # An ordinary DHCP client (the installer's udhcpc): no PXE options at all.
        return options
    options.append((93, struct.pack("!H", profile.arch)))
    options.append((94, profile.undi))
    options.append((97, client_guid(profile, mac, serial, revision)))
    if profile.user_class is not None:
        options.append((77, profile.user_class))
    if profile.encapsulated is not None:
        options.append((175, profile.encapsulated))
    return options


def relay_agent_option(circuit_id: bytes | None, remote_id: bytes | None) -> tuple[int, bytes]:
    sub: list[tuple[int, bytes]] = []
    if circuit_id is not None:
        sub.append((1, circuit_id))
    if remote_id is not None:
        sub.append((2, remote_id))
    return (82, encode_options(sub))


def build_bootp(
    xid: int,
    mac: bytes,
    options: list[tuple[int, bytes]],
    *,
    flags: int = 0,
    hops: int = 0,
    giaddr: bytes = ZERO_IP,
) -> bytes:
    header = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        1,  # BOOTREQUEST
        1,  # Ethernet
        6,
        hops,
        xid,
        0,
        flags,
        ZERO_IP,
        ZERO_IP,
        ZERO_IP,
        giaddr,
        mac,
        b"",
        b"",
    )
    packet = header + MAGIC_COOKIE + encode_options(options) + b"\xff"
    # Old BOOTP relays and servers drop anything shorter than the 300-byte BOOTP minimum.
    return packet.ljust(300, b"\0")


def decode_bootp(data: bytes) -> dict | None:
    if len(data) < 240 or data[236:240] != MAGIC_COOKIE:
        return None
    op, _htype, hlen, hops, xid, _secs, flags = struct.unpack("!BBBBIHH", data[:12])
    ciaddr, yiaddr, siaddr, giaddr = (socket.inet_ntoa(data[o : o + 4]) for o in (12, 16, 20, 24))
    sname_raw, file_raw = data[44:108], data[108:236]
    options = decode_options(data[240:])
    overload = options.get(52)
    # Option 52 moves further options into the file and/or sname fields.
    if overload:
        if overload[0] & 1:
            decode_options(file_raw, options)
            file_raw = b""
        if overload[0] & 2:
            decode_options(sname_raw, options)
            sname_raw = b""
    msg = options.get(53)
    server_id = options.get(54)
    option43 = options.get(43)
    relay = decode_options(bytes(options[82])) if 82 in options else None
    return {
        "op": op,
        "xid": xid,
        "hops": hops,
        "flags": flags,
        "ciaddr": ciaddr,
        "yiaddr": yiaddr,
        "siaddr": siaddr,
        "giaddr": giaddr,
        "chaddr": format_mac(data[28 : 28 + min(hlen, 16)]),
        "sname": text_of(sname_raw),
        "file": text_of(file_raw),
        "options": {str(code): bytes(value).hex() for code, value in sorted(options.items())},
        "message_type": MESSAGE_NAMES.get(msg[0], str(msg[0])) if msg else None,
        "server_id": socket.inet_ntoa(bytes(server_id)) if server_id and len(server_id) == 4 else None,
        "vendor_class": text_of(options.get(60)),
        "tftp_server": text_of(options.get(66)),
        "bootfile": text_of(options.get(67)),
        "boot_url": text_of(options.get(224)),
        "pxe_menu_text": pxe_menu_text(option43),
        "option43_hex": bytes(option43).hex() if option43 is not None else None,
        "relay_agent": {str(k): bytes(v).hex() for k, v in relay.items()} if relay is not None else None,
    }


def udp_frame(src_mac: bytes, dst_mac: bytes, src_ip: bytes, dst_ip: bytes, sport: int, dport: int, payload: bytes):
    length = 8 + len(payload)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
    checksum = inet_checksum(pseudo + struct.pack("!HHHH", sport, dport, length, 0) + payload) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, length, checksum)
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + length, random.getrandbits(16), 0, 64, socket.IPPROTO_UDP, 0, src_ip, dst_ip
    )
    ip = ip[:10] + struct.pack("!H", inet_checksum(ip)) + ip[12:]
    return dst_mac + src_mac + struct.pack("!H", ETH_P_IP) + ip + udp + payload


def parse_udp_frame(frame: bytes) -> tuple[dict, bytes] | None:
    if len(frame) < 42 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
        return None
    ip = frame[14:]
    if ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
        return None
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    udp = ip[ihl:total]
    if len(udp) < 8:
        return None
    sport, dport, length = struct.unpack("!HHH", udp[:6])
    meta = {
        "eth_src": format_mac(frame[6:12]),
        "eth_dst": format_mac(frame[0:6]),
        "ip_src": socket.inet_ntoa(ip[12:16]),
        "ip_dst": socket.inet_ntoa(ip[16:20]),
        "udp_sport": sport,
        "udp_dport": dport,
    }
    return meta, udp[8:length]


# --- DHCP transports -----------------------------------------------------------------------------


class RawClient:
    """Speaks as a DHCP client with any MAC, straight onto the wire, as boot firmware does."""

    def __init__(self, iface: str, mac: bytes, broadcast_flag: bool):
        self.iface = iface
        self.mac = mac
        self.flags = FLAG_BROADCAST if broadcast_flag else 0
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        try:
            self.sock.bind((iface, ETH_P_IP))
            # The server answers a client with broadcast flag off by unicast to chaddr, which need
            # not be the interface's MAC; promiscuous membership lasts only as long as this socket.
            mreq = struct.pack("iHH8s", socket.if_nametoindex(iface), PACKET_MR_PROMISC, 0, b"")
            self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        except OSError as exc:
            self.sock.close()
            raise UsageError(f"cannot open interface {iface!r}: {exc}") from None

    def send(self, xid: int, options: list[tuple[int, bytes]]) -> None:
        payload = build_bootp(xid, self.mac, options, flags=self.flags)
        self.sock.send(udp_frame(self.mac, BROADCAST_MAC, ZERO_IP, BROADCAST_IP, 68, 67, payload))

    def receive(self, timeout: float) -> tuple[dict, float] | None:
        """One BOOTREPLY for our chaddr (any xid), or None at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                frame, address = self.sock.recvfrom(65535)
            except TimeoutError:
                return None
            if address[2] == PACKET_OUTGOING:
                continue
            parsed = parse_udp_frame(frame)
            if parsed is None:
                continue
            meta, payload = parsed
            if meta["udp_dport"] != 68 or frame[0:6] not in (self.mac, BROADCAST_MAC):
                continue
            reply = decode_bootp(payload)
            if reply is None or reply["op"] != 2 or reply["chaddr"] != format_mac(self.mac):
                continue
            reply["delivery"] = meta
            return reply, time.monotonic()

    def close(self) -> None:
        self.sock.close()


class RelayClient:
    """Plays a DHCP relay agent (RFC 3046) forwarding the client's packets from giaddr:67."""

    def __init__(self, iface: str, mac: bytes, giaddr: str, server_ip: str, circuit_id, remote_id):
        self.mac = mac
        self.giaddr = parse_ip(giaddr)
        self.server = (server_ip, 67)
        self.agent_option = (
            relay_agent_option(circuit_id, remote_id) if circuit_id is not None or remote_id is not None else None
        )
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
            self.sock.bind((giaddr, 67))
        except OSError as exc:
            self.sock.close()
            raise UsageError(f"cannot bind relay socket {giaddr}:67 on {iface!r}: {exc}") from None

    def send(self, xid: int, options: list[tuple[int, bytes]]) -> None:
        # The relay agent appends option 82 as the last option (RFC 3046 2.1).
        if self.agent_option is not None:
            options = [*options, self.agent_option]
        payload = build_bootp(xid, self.mac, options, hops=1, giaddr=self.giaddr)
        self.sock.sendto(payload, self.server)

    def receive(self, timeout: float) -> tuple[dict, float] | None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                payload, (src, sport) = self.sock.recvfrom(65535)
            except TimeoutError:
                return None
            reply = decode_bootp(payload)
            if reply is None or reply["op"] != 2 or reply["chaddr"] != format_mac(self.mac):
                continue
            reply["delivery"] = {"ip_src": src, "udp_sport": sport, "ip_dst": socket.inet_ntoa(self.giaddr)}
            return reply, time.monotonic()

    def close(self) -> None:
        self.sock.close()


def exchange(transport, xid: int, options, wanted: set[str], timeout: float) -> tuple[dict | None, int]:
    """Send and retransmit until a reply of a wanted type with our xid arrives; returns (reply, sends)."""
    deadline = time.monotonic() + timeout
    sends = 0
    while time.monotonic() < deadline:
        transport.send(xid, options)
        sends += 1
        resend_at = min(deadline, time.monotonic() + RETRANSMIT_S)
        while (remaining := resend_at - time.monotonic()) > 0:
            got = transport.receive(remaining)
            if got is None:
                break
            reply = got[0]
            if reply["xid"] == xid and reply["message_type"] in wanted:
                return reply, sends
    return None, sends


def make_transport(args, mac: bytes):
    if args.giaddr:
        if not args.server_ip:
            raise UsageError("--giaddr needs --server-ip")
        parse_ip(args.server_ip)
        circuit = parse_agent_value(args.circuit_id) if args.circuit_id is not None else None
        remote = parse_agent_value(args.remote_id) if args.remote_id is not None else None
        return RelayClient(args.iface, mac, args.giaddr, args.server_ip, circuit, remote)
    return RawClient(args.iface, mac, args.broadcast)


def serial_for(args, mac: bytes) -> int:
    if args.serial is None:
        return int.from_bytes(mac[2:], "big")
    try:
        serial = int(args.serial, 16)
    except ValueError:
        raise UsageError(f"--serial must be hex: {args.serial!r}") from None
    if not 0 <= serial <= 0xFFFFFFFF:
        raise UsageError("--serial must fit in 32 bits")
    return serial


def cmd_dhcp(args) -> dict:
    started = time.monotonic()
    profile = PROFILES[args.profile]
    mac = parse_mac(args.mac)
    serial = serial_for(args, mac)
    client_id = parse_hex(args.client_id, "--client-id") if args.client_id else None
    transport = make_transport(args, mac)
    xid = random.getrandbits(32)
    offer = ack = None
    nak = False
    sent = {"discover": 0, "request": 0}
    try:
        discover = client_options(profile, mac, serial, DISCOVER, client_id=client_id)
        offer, sent["discover"] = exchange(transport, xid, discover, {"OFFER"}, args.timeout)
        if offer is not None and args.request and profile.sends_request:
            server_id = offer["server_id"]
            request = client_options(
                profile,
                mac,
                serial,
                REQUEST,
                client_id=client_id,
                requested_ip=socket.inet_aton(offer["yiaddr"]),
                server_id=socket.inet_aton(server_id) if server_id else None,
            )
            reply, sent["request"] = exchange(transport, xid, request, {"ACK", "NAK"}, args.timeout)
            if reply is not None and reply["message_type"] == "ACK":
                ack = reply
            elif reply is not None:
                nak = True
    finally:
        transport.close()
    return {
        "offer": offer,
        "ack": ack,
        "nak": nak,
        "sent": sent,
        "xid": xid,
        "elapsed_ms": round((time.monotonic() - started) * 1000),
    }


def cmd_dhcp_watch(args) -> dict:
    if args.seconds <= 0 or args.interval <= 0:
        raise UsageError("--seconds and --interval must be positive")
    profile = PROFILES[args.profile]
    mac = parse_mac(args.mac)
    serial = serial_for(args, mac)
    options = client_options(profile, mac, serial, DISCOVER)
    transport = RawClient(args.iface, mac, args.broadcast)
    interval = args.interval / 1000
    started = time.monotonic()
    stop_sending = started + args.seconds
    sent_at: dict[int, tuple[int, float]] = {}
    answered: set[int] = set()
    next_send = started
    try:
        while True:
            now = time.monotonic()
            if now >= stop_sending and (not sent_at or now >= max(t for _, t in sent_at.values()) + ANSWER_WINDOW_S):
                break
            if now < stop_sending and now >= next_send:
                xid = random.getrandbits(32)
                transport.send(xid, options)
                sent_at[xid] = (len(sent_at), time.monotonic())
                next_send += interval
                continue
            wake = next_send if now < stop_sending else max(t for _, t in sent_at.values()) + ANSWER_WINDOW_S
            got = transport.receive(max(0.001, wake - now))
            if got is None:
                continue
            reply, received = got
            entry = sent_at.get(reply["xid"])
            if entry and reply["message_type"] == "OFFER" and received - entry[1] <= ANSWER_WINDOW_S:
                answered.add(entry[0])
    finally:
        transport.close()
    lost = sorted(set(range(len(sent_at))) - answered)
    return {"sent": len(sent_at), "answered": len(answered), "lost": lost}


def revision_for(args) -> int | None:
    if getattr(args, "revision", None) is None:
        return None
    try:
        return int(args.revision, 16)
    except ValueError:
        raise UsageError(f"--revision must be hex: {args.revision!r}") from None


def cmd_discover(args) -> dict:
    """Send DISCOVERs as the firmware would, without waiting for answers (a board nobody knows
    gets none). Each has its own xid, as a rebooting board's would."""
    if not 1 <= args.count <= 1000:
        raise UsageError("--count must be 1..1000")
    profile = PROFILES[args.profile]
    mac = parse_mac(args.mac)
    options = client_options(profile, mac, serial_for(args, mac), DISCOVER, revision=revision_for(args))
    transport = make_transport(args, mac)
    try:
        for _ in range(args.count):
            transport.send(random.getrandbits(32), options)
    finally:
        transport.close()
    return {"sent": args.count}


def garbage_payloads(rng: random.Random, mac: bytes) -> list[tuple[str, bytes, int]]:
    """(kind, UDP payload, destination port): requests no DHCP server should take seriously."""
    valid = build_bootp(1, mac, client_options(PROFILES["pi4"], mac, 1, DISCOVER))
    overrun = bytearray(valid)
    overrun[240 + 1] = 250  # option 53 claims 250 bytes
    reply = bytearray(valid)
    reply[0] = 2
    zero_mac = bytearray(valid)
    zero_mac[28:34] = bytes(6)
    cookie = bytearray(valid)
    cookie[236] ^= 0xFF
    inform = build_bootp(1, mac, [(53, bytes((INFORM,))), (60, VENDOR_BIOS.encode())])
    return [
        ("random", rng.randbytes(rng.randrange(1, 600)), 67),
        ("truncated", valid[: rng.randrange(1, 260)], 67),
        ("cut in the options", valid[: rng.randrange(241, 280)], 67),
        ("option overrun", bytes(overrun), 67),
        ("a reply", bytes(reply), 67),
        ("zero MAC", bytes(zero_mac), 67),
        ("wrong magic cookie", bytes(cookie), 67),
        ("INFORM", inform, 67),
        ("empty", b"", 67),
        ("to port 68", valid, 68),
    ]


def cmd_garbage(args) -> dict:
    """Broadcast malformed DHCP requests (and one valid one to the wrong port) from a MAC that
    a valid request would make a discovered board, so a listener that records any of them is wrong."""
    if not 1 <= args.count <= 10000:
        raise UsageError("--count must be 1..10000")
    rng = random.Random(args.seed)
    mac = parse_mac(args.mac)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    kinds: dict[str, int] = {}
    try:
        sock.bind((args.iface, ETH_P_IP))
        for i in range(args.count):
            kind, payload, port = garbage_payloads(rng, mac)[i % 10]
            sock.send(udp_frame(mac, BROADCAST_MAC, ZERO_IP, BROADCAST_IP, 68, port, payload))
            kinds[kind] = kinds.get(kind, 0) + 1
    except OSError as exc:
        raise UsageError(f"cannot send on {args.iface!r}: {exc}") from None
    finally:
        sock.close()
    return {"sent": args.count, "kinds": kinds}


# --- TFTP ----------------------------------------------------------------------------------------

TFTP_RRQ, TFTP_DATA, TFTP_ACK, TFTP_ERROR, TFTP_OACK = 1, 3, 4, 5, 6
TFTP_ERRORS = {
    0: "Not defined",
    1: "File not found",
    2: "Access violation",
    3: "Disk full",
    4: "Illegal operation",
    5: "Unknown transfer ID",
    6: "File already exists",
    7: "No such user",
    8: "Option negotiation failed",
}
TFTP_PACKET_TIMEOUT_S = 1.0
TFTP_RETRIES = 5


def tftp_error(code: int, message: str) -> bytes:
    return struct.pack("!HH", TFTP_ERROR, code) + message.encode() + b"\0"


def cmd_tftp(args) -> dict:
    return tftp_get(args.server, args.file, blksize=args.blksize, tsize=args.tsize, out=args.out, timeout=args.timeout)


def tftp_get(
    server: str,
    file: str,
    *,
    blksize: int | None = None,
    tsize: bool = False,
    out: str | None = None,
    timeout: float = 10.0,
) -> dict:
    """Read one file over TFTP (RFC 1350, with blksize and tsize); ``out`` keeps its bytes.
    The socket lives in the calling thread's network namespace."""
    parse_ip(server)
    if blksize is not None and not 8 <= blksize <= 65464:
        raise UsageError("--blksize must be 8..65464 (RFC 2348)")
    requested: dict[str, str] = {}
    if blksize is not None:
        requested["blksize"] = str(blksize)
    if tsize:
        # RFC 2349: a reader asks with tsize 0 and the server answers with the real size.
        requested["tsize"] = "0"
    rrq = struct.pack("!H", TFTP_RRQ) + file.encode() + b"\0octet\0"
    for key, value in requested.items():
        rrq += key.encode() + b"\0" + value.encode() + b"\0"

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    digest = hashlib.sha256()
    sink = open(out, "wb") if out else None
    size = 0
    block_size = 512
    told_size = None
    expected = 1
    peer = None  # the server's transfer ID (address, port), fixed by its first answer
    last_sent, last_dest = rrq, (server, 69)
    deadline = time.monotonic() + timeout
    result: dict | None = None
    try:
        sock.sendto(last_sent, last_dest)
        retries = 0
        while result is None:
            if time.monotonic() >= deadline:
                result = {"ok": False, "error": "timeout"}
                break
            sock.settimeout(min(TFTP_PACKET_TIMEOUT_S, max(0.01, deadline - time.monotonic())))
            try:
                packet, source = sock.recvfrom(65536)
            except TimeoutError:
                retries += 1
                if retries > TFTP_RETRIES:
                    result = {"ok": False, "error": "timeout"}
                    break
                sock.sendto(last_sent, last_dest)
                continue
            if source[0] != server or len(packet) < 4:
                continue
            if peer is None:
                # RFC 1350: the server answers from a new port, which is the transfer ID from now on.
                peer = source
            elif source != peer:
                sock.sendto(tftp_error(5, "Unknown transfer ID"), source)
                continue
            opcode = struct.unpack("!H", packet[:2])[0]
            if opcode == TFTP_ERROR:
                code = struct.unpack("!H", packet[2:4])[0]
                message = packet[4:].split(b"\0", 1)[0].decode("utf-8", "replace")
                result = {
                    "ok": False,
                    "error": TFTP_ERRORS.get(code, "Not defined"),
                    "error_code": code,
                    "message": message,
                }
            elif opcode == TFTP_OACK and expected == 1 and size == 0:
                fields = packet[2:].split(b"\0")
                acked = {
                    fields[i].decode().lower(): fields[i + 1].decode()
                    for i in range(0, len(fields) - 1, 2)
                    if fields[i]
                }
                unknown = set(acked) - set(requested)
                if unknown or int(acked.get("blksize", block_size)) > int(requested.get("blksize", 65464)):
                    sock.sendto(tftp_error(8, "Option negotiation failed"), peer)
                    result = {"ok": False, "error": "Option negotiation failed", "oack": acked}
                    break
                block_size = int(acked.get("blksize", 512))
                told_size = int(acked["tsize"]) if "tsize" in acked else None
                last_sent, last_dest = struct.pack("!HH", TFTP_ACK, 0), peer
                sock.sendto(last_sent, last_dest)
                retries = 0
            elif opcode == TFTP_DATA:
                block = struct.unpack("!H", packet[2:4])[0]
                data = packet[4:]
                if block == expected & 0xFFFF:
                    digest.update(data)
                    size += len(data)
                    if sink is not None:
                        sink.write(data)
                    last_sent, last_dest = struct.pack("!HH", TFTP_ACK, block), peer
                    sock.sendto(last_sent, last_dest)
                    retries = 0
                    expected += 1
                    if len(data) < block_size:
                        result = {
                            "ok": True,
                            "size": size,
                            "sha256": digest.hexdigest(),
                            "tsize": told_size,
                            "blksize": block_size,
                            "blocks": expected - 1,
                        }
                elif block == (expected - 1) & 0xFFFF:
                    # Our ACK was lost and the server resent the block: ACK it again, once.
                    sock.sendto(last_sent, last_dest)
    finally:
        sock.close()
        if sink is not None:
            sink.close()
    if not result["ok"]:
        result.setdefault("size", size)
        result.setdefault("tsize", told_size)
    return result


# --- command line --------------------------------------------------------------------------------


def build_parser() -> Parser:
    parser = Parser(prog="probe.py", description="DHCP/TFTP client that imitates network-boot firmware")
    sub = parser.add_subparsers(dest="command", required=True)

    def common_dhcp(p):
        p.add_argument("--iface", required=True)
        p.add_argument("--mac", required=True)
        p.add_argument("--profile", required=True, choices=sorted(PROFILES))
        p.add_argument("--serial", help="board serial in hex for option 97 (default: from the MAC)")
        p.add_argument("--broadcast", action="store_true", help="set the BOOTP broadcast flag")

    dhcp = sub.add_parser("dhcp")
    common_dhcp(dhcp)
    dhcp.add_argument("--request", action="store_true")
    dhcp.add_argument("--timeout", type=float, default=3.0)
    dhcp.add_argument("--giaddr")
    dhcp.add_argument("--server-ip")
    dhcp.add_argument("--circuit-id")
    dhcp.add_argument("--remote-id")
    dhcp.add_argument("--client-id")

    watch = sub.add_parser("dhcp-watch")
    common_dhcp(watch)
    watch.add_argument("--seconds", type=float, required=True)
    watch.add_argument("--interval", type=float, required=True, help="milliseconds between DISCOVERs")

    discover = sub.add_parser("discover")
    common_dhcp(discover)
    discover.add_argument("--count", type=int, default=1)
    discover.add_argument("--revision", help="board revision code in hex for a Pi 4/5 option 97")
    discover.add_argument("--giaddr")
    discover.add_argument("--server-ip")
    discover.add_argument("--circuit-id")
    discover.add_argument("--remote-id")

    garbage = sub.add_parser("garbage")
    garbage.add_argument("--iface", required=True)
    garbage.add_argument("--mac", default="dc:a6:32:ba:d0:01")
    garbage.add_argument("--count", type=int, default=100)
    garbage.add_argument("--seed", type=int, default=1)

    tftp = sub.add_parser("tftp")
    tftp.add_argument("--server", required=True)
    tftp.add_argument("--file", required=True)
    tftp.add_argument("--blksize", type=int)
    tftp.add_argument("--tsize", action="store_true")
    tftp.add_argument("--out")
    tftp.add_argument("--timeout", type=float, default=10.0)
    return parser


COMMANDS = {
    "dhcp": cmd_dhcp,
    "dhcp-watch": cmd_dhcp_watch,
    "discover": cmd_discover,
    "garbage": cmd_garbage,
    "tftp": cmd_tftp,
}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        result = COMMANDS[args.command](args)
    except UsageError as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
