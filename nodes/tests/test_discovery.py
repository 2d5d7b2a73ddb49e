"""The DHCP parser, on packets built by hand byte by byte (netboot.md §1.1, §1.2, §5)."""

from __future__ import annotations

import random
import socket
import struct

import pytest

from nodes.discovery import (
    PI_OUIS,
    Sighting,
    dhcp_payload,
    parse_dhcp,
    parse_frame,
    relay_id_for_node,
)
from nodes.models import relay_id_text

PI_VENDOR = b"PXEClient:Arch:00000:UNDI:002001"
COOKIE = b"\x63\x82\x53\x63"


def packet(mac: str, options: list[tuple[int, bytes]], *, op=1, htype=1, hlen=6, giaddr="0.0.0.0", cookie=COOKIE):
    """A BOOTP packet: the 236-byte fixed part, the magic cookie, the options, END, padding."""
    fixed = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        op,
        htype,
        hlen,
        1 if giaddr != "0.0.0.0" else 0,
        0x26F30339,
        0,
        0,
        bytes(4),
        bytes(4),
        bytes(4),
        socket.inet_aton(giaddr),
        bytes.fromhex(mac.replace(":", "")),
        b"",
        b"",
    )
    body = b"".join(bytes((code, len(value))) + value for code, value in options)
    return (fixed + cookie + body + b"\xff").ljust(300, b"\0")


def pi_options(guid: bytes, message=1, vendor=PI_VENDOR) -> list[tuple[int, bytes]]:
    # The option set and order of the tcpdump in boot-net.adoc.
    return [
        (53, bytes((message,))),
        (55, bytes((43, 60, 66, 67, *range(128, 136)))),
        (93, b"\x00\x00"),
        (94, b"\x01\x02\x01"),
        (97, b"\x00" + guid),
        (60, vendor),
    ]


def rpi_guid(fourcc: bytes, revision: int, mac: str, serial: int) -> bytes:
    return fourcc + struct.pack("<I", revision) + bytes.fromhex(mac.replace(":", ""))[2:] + struct.pack("<I", serial)


def x86_options(arch: int, vendor: bytes) -> list[tuple[int, bytes]]:
    return [
        (53, b"\x01"),
        (93, struct.pack("!H", arch)),
        (94, b"\x01\x03\x10"),
        (97, b"\x00" + bytes(range(16))),
        (60, vendor),
    ]


PI4 = packet("dc:a6:32:01:36:c2", pi_options(rpi_guid(b"RPi4", 0x00C03111, "dc:a6:32:01:36:c2", 0x9FFEFDEF)))


def test_pi4_option97_gives_model_revision_and_serial():
    sighting = parse_dhcp(PI4)
    assert sighting == Sighting(
        mac="dc:a6:32:01:36:c2",
        message_type=1,
        vendor_class=PI_VENDOR.decode(),
        arch=0,
        client_id="00:52:50:69:34:11:31:c0:00:32:01:36:c2:ef:fd:fe:9f",
        board_model="pi4b",
        revision="00c03111",
        serial="9ffefdef",
        is_pi=True,
        netboot=True,
    )


def test_cm4_is_told_apart_by_the_revision_type_field():
    mac = "e4:5f:01:aa:bb:cc"
    sighting = parse_dhcp(packet(mac, pi_options(rpi_guid(b"RPi4", 0x00C03140, mac, 0x1000ABCD))))
    assert (sighting.board_model, sighting.revision, sighting.serial) == ("cm4", "00c03140", "1000abcd")


def test_pi400_boots_like_a_pi4():
    mac = "dc:a6:32:aa:bb:cc"
    assert parse_dhcp(packet(mac, pi_options(rpi_guid(b"RPi4", 0x00C03130, mac, 1)))).board_model == "pi4b"


def test_pi5():
    mac = "2c:cf:67:10:20:30"
    sighting = parse_dhcp(packet(mac, pi_options(rpi_guid(b"RPi5", 0x00D04170, mac, 0x5A5AC501))))
    assert (sighting.board_model, sighting.serial, sighting.is_pi) == ("pi5", "5a5ac501", True)


def test_pi_option97_is_recognised_without_a_pi_oui():
    # dnsmasq's dhcp-match on "RPi4" tags any MAC, and so does pinet (netboot.md §1.2).
    mac = "02:00:00:00:00:01"
    sighting = parse_dhcp(packet(mac, pi_options(rpi_guid(b"RPi4", 0x00C03111, mac, 7))))
    assert sighting.is_pi and sighting.board_model == "pi4b"


def test_pi3b_constant_guid():
    sighting = parse_dhcp(packet("b8:27:eb:28:f6:6d", pi_options(b"D" * 16)))
    assert (sighting.board_model, sighting.serial, sighting.is_pi) == ("pi3b", None, True)
    assert sighting.client_id == "00:" + ":".join(["44"] * 16)


def test_pi3bplus_serial_repeated():
    sighting = parse_dhcp(packet("b8:27:eb:01:02:03", pi_options(struct.pack("<I", 0xDEADBEEF) * 4)))
    assert (sighting.board_model, sighting.serial, sighting.is_pi) == ("pi3b+", "deadbeef", True)


def test_pi4_with_the_old_option97_layout():
    sighting = parse_dhcp(packet("dc:a6:32:01:02:03", pi_options(struct.pack("<I", 0x9FFEFDEF) * 4)))
    assert (sighting.board_model, sighting.serial, sighting.is_pi) == ("pi4b", "9ffefdef", True)


def test_repeated_guid_needs_the_pi_oui_and_vendor_class():
    # The OUI alone, or the layout alone, is not a Pi: a BIOS PC sends the same option 60.
    pc = parse_dhcp(packet("52:54:00:01:02:03", pi_options(b"D" * 16)))
    assert (pc.is_pi, pc.board_model) == (False, "x86-bios")
    other_vendor = parse_dhcp(
        packet("b8:27:eb:01:02:03", pi_options(b"D" * 16, vendor=b"PXEClient:Arch:00000:UNDI:002000"))
    )
    assert not other_vendor.is_pi
    uuid = parse_dhcp(packet("dc:a6:32:01:02:03", pi_options(bytes(range(16)))))
    assert (uuid.is_pi, uuid.board_model) == (False, "x86-bios")


def test_x86_bios_and_uefi():
    bios = parse_dhcp(packet("52:54:00:12:34:56", x86_options(0, PI_VENDOR)))
    assert (bios.board_model, bios.arch, bios.is_pi, bios.netboot) == ("x86-bios", 0, False, True)
    uefi = parse_dhcp(packet("52:54:00:12:34:57", x86_options(7, b"PXEClient:Arch:00007:UNDI:003016")))
    assert (uefi.board_model, uefi.arch) == ("x86-uefi", 7)
    arm = parse_dhcp(packet("52:54:00:12:34:58", x86_options(11, b"PXEClient:Arch:00011:UNDI:003016")))
    assert arm.board_model == "arm64-uefi"
    http = parse_dhcp(packet("52:54:00:12:34:59", x86_options(16, b"HTTPClient:Arch:00016:UNDI:003016")))
    assert (http.board_model, http.netboot) == ("x86-uefi", True)


def test_an_ordinary_dhcp_client_is_parsed_but_not_a_boot_client():
    sighting = parse_dhcp(packet("52:54:00:00:00:99", [(53, b"\x03"), (60, b"udhcp 1.35.0"), (12, b"laptop")]))
    assert (sighting.message_type, sighting.netboot, sighting.board_model) == (3, False, "unknown")


def test_relayed_request_with_option82_text():
    options = [*pi_options(b"D" * 16), (82, b"\x01\x08ge-0/0/7\x02\x08switch-a")]
    sighting = parse_dhcp(packet("b8:27:eb:00:00:07", options, giaddr="198.51.100.1"))
    assert sighting.relay_address == "198.51.100.1"
    assert (sighting.circuit_id, sighting.remote_id) == (b"ge-0/0/7".hex(), b"switch-a".hex())
    assert relay_id_text(sighting.circuit_id) == "ge-0/0/7"
    assert relay_id_for_node(sighting.circuit_id) == "ge-0/0/7"


def test_relayed_request_with_dlink_option82():
    # D-Link: circuit-id type 0, length 4, VLAN 10, module 1, port 7; remote-id type 0, length 6, MAC.
    circuit, remote = b"\x00\x04\x00\x0a\x01\x07", b"\x00\x06\x00\x11\x22\x33\x44\x55"
    options = [*x86_options(0, PI_VENDOR), (82, b"\x01\x06" + circuit + b"\x02\x08" + remote)]
    sighting = parse_dhcp(packet("52:54:00:00:00:07", options, giaddr="203.0.113.1"))
    assert relay_id_text(sighting.circuit_id) == "vlan 10 module 1 port 7"
    assert relay_id_text(sighting.remote_id, remote=True) == "switch 00:11:22:33:44:55"
    assert relay_id_for_node(sighting.circuit_id) == "hex:0004000a0107"
    assert relay_id_text("fe01") == "hex:fe01"


def test_relay_ids_the_renderers_would_misread_stay_hex():
    assert relay_id_for_node(b" port 1".hex()) == "hex:" + b" port 1".hex()
    assert relay_id_for_node(b"hex:12".hex()) == "hex:" + b"hex:12".hex()
    assert relay_id_for_node("") == ""


def test_a_malformed_option82_costs_only_option82():
    options = [*pi_options(b"D" * 16), (82, b"\x01\x09ge-0")]
    sighting = parse_dhcp(packet("b8:27:eb:00:00:08", options, giaddr="198.51.100.1"))
    assert sighting.is_pi and sighting.circuit_id == ""


def test_option_overload_puts_options_in_the_file_field():
    base = bytearray(packet("52:54:00:00:00:11", [(53, b"\x01"), (52, b"\x01")]))
    extra = bytes((93, 2, 0, 7, 60)) + bytes((len(b"PXEClient:Arch:00007"),)) + b"PXEClient:Arch:00007" + b"\xff"
    base[108 : 108 + len(extra)] = extra
    sighting = parse_dhcp(bytes(base))
    assert (sighting.arch, sighting.board_model) == (7, "x86-uefi")


def test_client_id_too_long_for_a_node_is_left_out():
    sighting = parse_dhcp(packet("52:54:00:00:00:12", [(53, b"\x01"), (93, b"\x00\x07"), (97, b"\x00" + bytes(30))]))
    assert sighting.client_id == "" and sighting.board_model == "x86-uefi"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(PI4[:239], id="shorter than the fixed part"),
        pytest.param(packet("dc:a6:32:00:00:01", pi_options(b"D" * 16), cookie=b"\x63\x82\x53\x64"), id="wrong cookie"),
        pytest.param(packet("dc:a6:32:00:00:01", pi_options(b"D" * 16), op=2), id="a reply"),
        pytest.param(packet("dc:a6:32:00:00:01", pi_options(b"D" * 16), htype=6), id="not ethernet"),
        pytest.param(packet("dc:a6:32:00:00:01", pi_options(b"D" * 16), hlen=16), id="hlen 16"),
        pytest.param(packet("00:00:00:00:00:00", pi_options(b"D" * 16)), id="zero MAC"),
        pytest.param(packet("ff:ff:ff:ff:ff:ff", pi_options(b"D" * 16)), id="broadcast MAC"),
        pytest.param(packet("dc:a6:32:00:00:01", pi_options(b"D" * 16, message=8)), id="INFORM"),
        pytest.param(packet("dc:a6:32:00:00:01", pi_options(b"D" * 16, message=7)), id="RELEASE"),
        pytest.param(packet("dc:a6:32:00:00:01", [(60, PI_VENDOR)]), id="no message type"),
        pytest.param(packet("dc:a6:32:00:00:01", [(53, b"\x01\x01")]), id="message type of two bytes"),
        pytest.param(PI4[:240] + b"\x35\x01\x01\x3c\xff" + b"short", id="option overruns the packet"),
        pytest.param(PI4[:240] + b"\x35\x01\x01\x3c", id="option code without a length"),
    ],
)
def test_garbage_is_none(data):
    assert parse_dhcp(data) is None


def test_overloaded_file_field_with_an_overrun_is_none():
    data = bytearray(packet("52:54:00:00:00:01", [(53, b"\x01"), (52, b"\x01")]))
    data[108:111] = b"\x3c\x7f\x41"  # option 60 claiming 127 bytes in a 128-byte field at offset 0
    assert parse_dhcp(bytes(data)) is None


def test_parse_never_raises_on_random_bytes():
    rng = random.Random(8)
    for _ in range(3000):
        blob = rng.randbytes(rng.randrange(0, 700))
        if rng.random() < 0.5 and len(blob) >= 240:
            # Mostly valid headers, so the option parser sees the garbage too.
            blob = PI4[:236] + COOKIE + blob[240:]
        parse_dhcp(blob)
        parse_frame(blob)


@pytest.mark.parametrize("base", [PI4, packet("52:54:00:12:34:56", x86_options(7, b"PXEClient:Arch:00007"))])
def test_every_truncation_and_byte_flip_of_a_valid_packet_is_survived(base):
    rng = random.Random(9)
    for cut in range(len(base) + 1):
        result = parse_dhcp(base[:cut])
        assert result is None or isinstance(result, Sighting)
    for _ in range(2000):
        mutated = bytearray(base)
        for _ in range(rng.randrange(1, 8)):
            mutated[rng.randrange(240, len(mutated))] = rng.randrange(256)
        result = parse_dhcp(bytes(mutated))
        assert result is None or isinstance(result, Sighting)


def test_parse_rejects_what_is_not_bytes():
    assert parse_dhcp(None) is None
    assert parse_frame(12) is None


def _frame(payload: bytes, *, dport=67, fragment=0, ethertype=0x0800, vlan=False) -> bytes:
    udp = struct.pack("!HHHH", 68, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, fragment, 64, 17, 0, bytes(4), b"\xff" * 4)
    tag = struct.pack("!HH", 0x8100, 10) if vlan else b""
    return b"\xff" * 6 + bytes.fromhex("dca632013602") + tag + struct.pack("!H", ethertype) + ip + udp


def test_frames():
    assert dhcp_payload(_frame(PI4)) == PI4
    assert parse_frame(_frame(PI4)).serial == "9ffefdef"
    assert parse_frame(_frame(PI4, vlan=True)).serial == "9ffefdef"
    assert dhcp_payload(_frame(PI4, dport=68)) is None
    assert dhcp_payload(_frame(PI4, fragment=0x2000)) is None  # more fragments follow
    assert dhcp_payload(_frame(PI4, ethertype=0x86DD)) is None
    assert dhcp_payload(_frame(PI4)[:40]) is None
    for cut in range(len(_frame(PI4))):
        dhcp_payload(_frame(PI4)[:cut])


def test_the_pi_oui_list_is_data():
    assert {"b8:27:eb", "dc:a6:32", "e4:5f:01", "d8:3a:dd", "2c:cf:67"} == PI_OUIS


@pytest.mark.parametrize(
    "profile, mac, revision, expected",
    [
        ("pi4", "dc:a6:32:01:02:03", None, ("pi4b", True)),
        ("pi4", "e4:5f:01:01:02:03", 0x00C03140, ("cm4", True)),
        ("pi5", "2c:cf:67:01:02:03", None, ("pi5", True)),
        ("pi3", "b8:27:eb:01:02:03", None, ("pi3b+", True)),
        ("pi3b", "b8:27:eb:01:02:04", None, ("pi3b", True)),
        ("x86-bios", "52:54:00:01:02:03", None, ("x86-bios", False)),
        ("x86-uefi", "52:54:00:01:02:04", None, ("x86-uefi", False)),
        ("arm64-uefi", "52:54:00:01:02:05", None, ("arm64-uefi", False)),
    ],
)
def test_the_lab_probe_firmware_profiles_are_recognised(profile, mac, revision, expected):
    from provisioning.tests import probe

    raw = probe.parse_mac(mac)
    options = probe.client_options(probe.PROFILES[profile], raw, 0x1234ABCD, probe.DISCOVER, revision=revision)
    sighting = parse_dhcp(probe.build_bootp(1, raw, options))
    assert (sighting.board_model, sighting.is_pi) == expected
    if profile not in ("pi3b", "x86-bios", "x86-uefi", "arm64-uefi"):
        assert sighting.serial == "1234abcd"
