"""Recognising boards from the DHCP requests they broadcast: pure functions from bytes to a
``Sighting``. Nothing here touches the database, a socket or the clock, and nothing raises on
bad input: a frame or packet that is not a well-formed client DISCOVER/REQUEST gives None.

What identifies a board (netboot.md §1.1, §1.2, §5):
- A Pi 4/CM4 sends option 97 = 00 "RPi4" revision(LE) mac[2:6] serial(LE); a Pi 5 "RPi5".
- A Pi 3B/3B+ sends option 60 "PXEClient:Arch:00000:UNDI:002001" (as an x86 BIOS PC does)
  and an option 97 of one 4-byte value repeated: "DDDD" on the 3B, the serial on the 3B+.
- A Pi also claims arch 0 (x86 BIOS) in option 93, so neither option 93 nor the OUI alone
  tells a Pi from a PC: the OUI only confirms the repeated-value layouts.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from .choices import BoardModel

# Raspberry Pi Ltd's OUIs: PiServer's filter plus the Pi 5's 2c:cf:67 (netboot.md §1.2).
PI_OUIS = frozenset({"b8:27:eb", "dc:a6:32", "e4:5f:01", "d8:3a:dd", "2c:cf:67"})
# The Pi 3B/3B+ boot ROMs are the only Pis with this OUI; later boards use the others.
PI3_OUIS = frozenset({"b8:27:eb"})
PI_VENDOR_CLASS = "PXEClient:Arch:00000:UNDI:002001"
# The Pi 3B ROM's constant GUID, "D" sixteen times (boot-net.adoc tcpdump: 0.68.68.68...).
PI3B_GUID = b"D" * 16

# Board-type field (bits 4-11) of a new-style revision code (revision-codes.adoc). The Pi 400
# and CM4S boot like a 4B and CM4, the CM5 and Pi 500 like a Pi 5: pinet answers them alike.
PI4_TYPES = {0x11: BoardModel.PI4B, 0x13: BoardModel.PI4B, 0x14: BoardModel.CM4, 0x15: BoardModel.CM4}

# Option 93 (IANA processor architecture types, netboot.md §5) -> board model.
ARCH_MODELS = {
    0: BoardModel.X86_BIOS,
    20: BoardModel.X86_BIOS,
    6: BoardModel.X86_UEFI,
    7: BoardModel.X86_UEFI,
    9: BoardModel.X86_UEFI,
    15: BoardModel.X86_UEFI,
    16: BoardModel.X86_UEFI,
    11: BoardModel.ARM64_UEFI,
    19: BoardModel.ARM64_UEFI,
}

BOOTREQUEST = 1
DHCPDISCOVER, DHCPREQUEST = 1, 3
MAGIC_COOKIE = b"\x63\x82\x53\x63"
ETH_P_IP, ETH_P_8021Q = 0x0800, 0x8100
SERVER_PORT = 67
# Node.client_id holds at most 64 characters: 21 bytes as colon hex.
MAX_CLIENT_ID_BYTES = 21


@dataclass(frozen=True)
class Sighting:
    """What one client request says about the board that sent it."""

    mac: str
    message_type: int  # 1 DISCOVER, 3 REQUEST
    vendor_class: str = ""
    arch: int | None = None  # the first option 93 value
    client_id: str = ""  # option 97 as colon hex, "" if absent or too long
    board_model: str = BoardModel.UNKNOWN.value
    revision: str = ""  # 8 hex digits, from a Pi 4/5's option 97
    serial: str | None = None  # 8 hex digits
    is_pi: bool = False
    netboot: bool = False  # asked for a network boot: PXE/HTTP vendor class, option 93, or a Pi
    circuit_id: str = ""  # option 82 sub-option 1, hex
    remote_id: str = ""  # option 82 sub-option 2, hex
    relay_address: str | None = None  # giaddr, when relayed


def _options(buf: bytes, into: dict[int, bytes]) -> bool:
    """Parse DHCP options into ``into`` (repeated codes concatenate, RFC 3396). False when an
    option runs past the buffer: a packet like that is not trusted at all."""
    i, end = 0, len(buf)
    while i < end:
        code = buf[i]
        if code == 0:
            i += 1
            continue
        if code == 255:
            return True
        if i + 1 >= end:
            return False
        stop = i + 2 + buf[i + 1]
        if stop > end:
            return False
        into[code] = into.get(code, b"") + buf[i + 2 : stop]
        i = stop
    return True


def _sub_options(buf: bytes) -> dict[int, bytes]:
    """Option 82's sub-options; a malformed tail is dropped (the relay's fault, not the board's)."""
    found: dict[int, bytes] = {}
    i = 0
    while i + 1 < len(buf):
        stop = i + 2 + buf[i + 1]
        if stop > len(buf):
            break
        found.setdefault(buf[i], buf[i + 2 : stop])
        i = stop
    return found


def _text(value: bytes | None, limit: int = 255) -> str:
    if not value:
        return ""
    text = value.split(b"\0", 1)[0].decode("ascii", "replace")
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]


def _pi_identity(guid: bytes, mac: str, vendor_class: str) -> tuple[str, str, str | None] | None:
    """(board model, revision hex, serial hex) when option 97 says Raspberry Pi, else None."""
    if len(guid) != 17 or guid[0] != 0:
        return None
    body = guid[1:]
    fourcc = body[:4]
    if fourcc in (b"RPi4", b"RPi5"):
        revision = int.from_bytes(body[4:8], "little")
        serial = f"{int.from_bytes(body[12:16], 'little'):08x}"
        if fourcc == b"RPi5":
            model = BoardModel.PI5
        elif revision & (1 << 23):  # a new-style code: the type field is meaningful
            model = PI4_TYPES.get((revision >> 4) & 0xFF, BoardModel.PI4B)
        else:
            model = BoardModel.PI4B
        return model.value, f"{revision:08x}", serial
    # The repeated layouts carry no model, so they need the Pi's exact vendor class and OUI.
    if vendor_class != PI_VENDOR_CLASS or mac[:8] not in PI_OUIS or body != body[:4] * 4:
        return None
    if body == PI3B_GUID:
        return BoardModel.PI3B.value, "", None
    serial = f"{int.from_bytes(body[:4], 'little'):08x}"
    if mac[:8] in PI3_OUIS:
        return BoardModel.PI3BPLUS.value, "", serial
    # A Pi 4/5 with DHCP_OPTION97=0 (the old layout); a 4B is the likeliest and boots like the rest.
    return BoardModel.PI4B.value, "", serial


def parse_dhcp(payload: bytes) -> Sighting | None:
    """A client DISCOVER or REQUEST (the UDP payload sent to port 67) -> Sighting, else None."""
    try:
        data = bytes(payload)
    except TypeError:
        return None
    if len(data) < 240 or data[236:240] != MAGIC_COOKIE:
        return None
    op, htype, hlen = data[0], data[1], data[2]
    if op != BOOTREQUEST or htype != 1 or hlen != 6:
        return None
    chaddr = data[28:34]
    # No board has an all-zero MAC, and a group address (low bit of the first byte) is no board's.
    if chaddr == bytes(6) or chaddr[0] & 1:
        return None
    options: dict[int, bytes] = {}
    if not _options(data[240:], options):
        return None
    overload = options.get(52, b"")
    if len(overload) == 1:
        # Option 52 moves further options into the file (1) and/or sname (2) fields.
        if overload[0] & 1 and not _options(data[108:236], options):
            return None
        if overload[0] & 2 and not _options(data[44:108], options):
            return None
    message = options.get(53, b"")
    if len(message) != 1 or message[0] not in (DHCPDISCOVER, DHCPREQUEST):
        return None

    mac = ":".join(f"{b:02x}" for b in chaddr)
    vendor_class = _text(options.get(60))
    arch_raw = options.get(93, b"")
    arch = struct.unpack("!H", arch_raw[:2])[0] if len(arch_raw) >= 2 and len(arch_raw) % 2 == 0 else None
    guid = options.get(97, b"")
    client_id = ":".join(f"{b:02x}" for b in guid) if len(guid) <= MAX_CLIENT_ID_BYTES else ""
    relay = _sub_options(options.get(82, b""))
    giaddr = data[24:28]

    board_model, revision, serial = BoardModel.UNKNOWN.value, "", None
    pi = _pi_identity(guid, mac, vendor_class)
    if pi is not None:
        board_model, revision, serial = pi
    elif arch is not None:
        board_model = ARCH_MODELS.get(arch, BoardModel.UNKNOWN).value
    boot_client = vendor_class.startswith(("PXEClient", "HTTPClient"))
    return Sighting(
        mac=mac,
        message_type=message[0],
        vendor_class=vendor_class,
        arch=arch,
        client_id=client_id,
        board_model=board_model,
        revision=revision,
        serial=serial,
        is_pi=pi is not None,
        netboot=pi is not None or boot_client or arch is not None,
        circuit_id=relay.get(1, b"").hex(),
        remote_id=relay.get(2, b"").hex(),
        relay_address=socket.inet_ntoa(giaddr) if giaddr != bytes(4) else None,
    )


def dhcp_payload(frame: bytes) -> bytes | None:
    """The UDP payload of an Ethernet frame carrying IPv4/UDP to port 67, else None.

    Fragments are refused: a DHCP request fits one frame, and reassembly is the kernel's job.
    """
    try:
        frame = bytes(frame)
    except TypeError:
        return None
    offset = 14
    if len(frame) < offset:
        return None
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == ETH_P_8021Q:  # a VLAN tag the NIC did not strip
        offset += 4
        ethertype = int.from_bytes(frame[16:18], "big") if len(frame) >= 18 else 0
    if ethertype != ETH_P_IP:
        return None
    ip = frame[offset:]
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
        return None
    ihl = (ip[0] & 0x0F) * 4
    total = int.from_bytes(ip[2:4], "big")
    flags_fragment = int.from_bytes(ip[6:8], "big")
    if ihl < 20 or total < ihl + 8 or total > len(ip) or flags_fragment & 0x3FFF:
        return None
    udp = ip[ihl:total]
    dport, length = int.from_bytes(udp[2:4], "big"), int.from_bytes(udp[4:6], "big")
    if dport != SERVER_PORT or length < 8 or length > len(udp):
        return None
    return udp[8:length]


def parse_frame(frame: bytes) -> Sighting | None:
    """An Ethernet frame off the wire -> Sighting, else None."""
    payload = dhcp_payload(frame)
    return parse_dhcp(payload) if payload is not None else None


def relay_id_for_node(hex_value: str) -> str:
    """An option 82 value as Node.relay_circuit_id/relay_remote_id store it: the text when it
    is printable, else "hex:<digits>" (what the renderers turn back into bytes)."""
    raw = bytes.fromhex(hex_value or "")
    text = raw.decode("ascii", "replace")
    # The renderers strip the text and read a "hex:" prefix: keep such values in hex.
    if raw and all(0x20 <= b < 0x7F for b in raw) and text == text.strip() and not text.lower().startswith("hex:"):
        return text
    return f"hex:{raw.hex()}" if raw else ""
