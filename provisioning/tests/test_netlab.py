# Tests of the namespace harness (netlab.py, probe.py) against real dnsmasq and kea-dhcp4 with
# hand-written configurations. Every server runs inside a namespace the test creates.

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provisioning.tests import probe
from provisioning.tests.netlab import PROBE, NetLab, netlab, netns_names
from tests.tools import need_program

PI4_MAC = "dc:a6:32:01:02:03"
PI3_MAC = "b8:27:eb:0a:0b:0c"
STRANGER_MAC = "02:00:00:00:00:99"
BOOT_URL = "http://192.0.2.1/boot/tok/?x=1"
NO_ADDRESS = str(ipaddress.IPv4Address(0))
# What dnsmasq builds from pxe-service=0,"Raspberry Pi Boot" (netboot.md 1.1).
RPI_OPTION43 = b"\x06\x01\x03\x0a\x04\x00PXE\x09\x14\x00\x00\x11Raspberry Pi Boot\xff"


@pytest.fixture
def dnsmasq():
    return need_program("dnsmasq", "dnsmasq-base")


@pytest.fixture
def kea():
    return need_program("kea-dhcp4", "kea-dhcp4-server")


@pytest.fixture
def lab():
    with netlab(client_cidr="192.0.2.50/24") as lab:
        yield lab


def full_dhcp_conf(lab: NetLab) -> list[str]:
    tftp_root = lab.path("tftp")
    tftp_root.mkdir(exist_ok=True)
    return [
        "port=0",
        f"interface={lab.server_if}",
        "bind-interfaces",
        "dhcp-range=192.0.2.100,192.0.2.199,255.255.255.0,1h",
        f"dhcp-leasefile={lab.path('leases')}",
        "log-dhcp",
        f"log-facility={lab.path('dnsmasq.log')}",
        f"dhcp-host={PI4_MAC},set:pi,192.0.2.20",
        f"dhcp-host={PI3_MAC},set:pi,192.0.2.21",
        'pxe-service=tag:pi,0,"Raspberry Pi Boot"',
        "enable-tftp",
        f"tftp-root={tftp_root}",
        "tftp-unique-root=mac",
        f'dhcp-option-force=tag:pi,224,"{BOOT_URL}"',
    ]


def wait_until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            return result
        time.sleep(0.05)
    return result


def gone_or_zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    # An orphan is reparented to pid 1, which may be slow (or never) to reap it.
    return "\nState:\tZ" in status


# --- probe.py on its own (no namespace needed) ---------------------------------------------------


def test_pi4_option97_layout():
    mac = probe.parse_mac(PI4_MAC)
    guid = probe.client_guid(probe.PROFILES["pi4"], mac, 0x9FFEFDEF)
    assert guid == bytes.fromhex("00525069341131c00032010203effdfe9f")
    assert probe.client_guid(probe.PROFILES["pi5"], mac, 1)[1:5] == b"RPi5"
    assert probe.client_guid(probe.PROFILES["pi3"], mac, 0x01020304) == b"\x00" + b"\x04\x03\x02\x01" * 4


def test_profiles_match_the_firmware():
    ipxe = dict(probe.client_options(probe.PROFILES["ipxe-efi"], probe.parse_mac(PI4_MAC), 1, probe.DISCOVER))
    assert ipxe[77] == b"iPXE"
    assert 224 not in ipxe[55]
    assert ipxe[93] == b"\x00\x07"
    arm = dict(probe.client_options(probe.PROFILES["arm64-uefi"], probe.parse_mac(PI4_MAC), 1, probe.DISCOVER))
    assert arm[60] == b"PXEClient:Arch:00011:UNDI:003016"
    assert arm[93] == b"\x00\x0b"


def test_relay_agent_values_are_text_unless_marked_hex():
    assert probe.parse_agent_value("hex:0a0b0c") == b"\x0a\x0b\x0c"
    assert probe.parse_agent_value("ge-0/0/7") == b"ge-0/0/7"
    assert probe.parse_agent_value("hex:abc") == b"hex:abc"
    assert probe.relay_agent_option(b"ge-0/0/7", b"\x01\x02") == (82, b"\x01\x08ge-0/0/7\x02\x02\x01\x02")


def test_bootp_round_trip_decodes_options():
    options = [(53, b"\x02"), (54, bytes([192, 0, 2, 1])), (43, RPI_OPTION43), (224, BOOT_URL.encode())]
    decoded = probe.decode_bootp(probe.build_bootp(7, probe.parse_mac(PI4_MAC), options))
    assert decoded["xid"] == 7
    assert decoded["message_type"] == "OFFER"
    assert decoded["server_id"] == "192.0.2.1"
    assert decoded["pxe_menu_text"] == "Raspberry Pi Boot"
    assert decoded["boot_url"] == BOOT_URL
    assert decoded["options"]["43"] == RPI_OPTION43.hex()


def test_probe_usage_error_is_json_and_exit_1():
    done = subprocess.run([sys.executable, PROBE, "dhcp", "--iface", "lo"], capture_output=True, text=True)
    assert done.returncode == 1
    assert "error" in json.loads(done.stdout)


# --- dnsmasq ---------------------------------------------------------------------------------------


def test_dnsmasq_offers_the_reserved_address_with_pxe_menu_and_acks(lab, dnsmasq):
    lab.start_dnsmasq(full_dhcp_conf(lab))

    result = lab.probe_dhcp(mac=PI4_MAC, profile="pi4", request=True)

    offer, ack = result["offer"], result["ack"]
    assert offer["yiaddr"] == "192.0.2.20"
    assert bytes.fromhex(offer["option43_hex"]) == RPI_OPTION43
    assert offer["pxe_menu_text"] == "Raspberry Pi Boot"
    assert offer["boot_url"] == BOOT_URL
    assert offer["server_id"] == "192.0.2.1"
    assert ack["yiaddr"] == "192.0.2.20"
    assert ack["boot_url"] == BOOT_URL
    assert result["nak"] is False
    assert wait_until(lambda: PI4_MAC in lab.path("leases").read_text())


def test_dnsmasq_pi3_never_requests(lab, dnsmasq):
    lab.start_dnsmasq(full_dhcp_conf(lab))

    result = lab.probe_dhcp(mac=PI3_MAC, profile="pi3", request=True)

    assert result["offer"]["yiaddr"] == "192.0.2.21"
    assert result["ack"] is None
    assert result["sent"]["request"] == 0
    log = lab.wait_for_text(lab.path("dnsmasq.log"), f"DHCPOFFER({lab.server_if}) 192.0.2.21")
    assert "DHCPREQUEST" not in log
    assert PI3_MAC not in lab.path("leases").read_text()


def test_tftp_serves_the_per_mac_directory(lab, dnsmasq):
    conf = full_dhcp_conf(lab)
    lab.set_client_mac(PI4_MAC)
    node_dir = lab.path("tftp") / PI4_MAC.replace(":", "-")
    node_dir.mkdir()
    # An exact multiple of the block size, so the transfer must end with an empty DATA block.
    content = os.urandom(300 * 1024)
    (node_dir / "start4.elf").write_bytes(content)
    lab.start_dnsmasq(conf)

    fetched = lab.probe_tftp(file="start4.elf", blksize=1024, tsize=True, out=lab.path("fetched"))
    plain = lab.probe_tftp(file="start4.elf")
    missing = lab.probe_tftp(file="fixup4.dat", blksize=1024, tsize=True)

    assert fetched["ok"] is True
    assert fetched["sha256"] == hashlib.sha256(content).hexdigest()
    assert fetched["size"] == fetched["tsize"] == len(content)
    assert fetched["blksize"] == 1024
    assert lab.path("fetched").read_bytes() == content
    assert plain["ok"] is True
    assert (plain["blksize"], plain["tsize"]) == (512, None)
    assert plain["sha256"] == fetched["sha256"]
    assert missing["ok"] is False
    assert missing["error"] == "File not found"


def proxy_conf(lab: NetLab, dhcp_range: str) -> list[str]:
    return [
        "port=0",
        f"interface={lab.server_if}",
        "bind-interfaces",
        f"dhcp-range={dhcp_range}",
        "log-dhcp",
        f"dhcp-host={PI4_MAC},set:pi",
        'pxe-service=tag:pi,0,"Raspberry Pi Boot"',
    ]


def test_dnsmasq_proxy_answers_known_macs_only(lab, dnsmasq):
    # The range itself must carry the tag (as PiServer writes it): see the next test.
    lab.start_dnsmasq(proxy_conf(lab, "tag:pi,192.0.2.0,proxy"))

    known = lab.probe_dhcp(mac=PI4_MAC, profile="pi4")
    stranger = lab.probe_dhcp(mac=STRANGER_MAC, profile="pi4", timeout=2)

    assert known["offer"]["yiaddr"] == NO_ADDRESS
    assert known["offer"]["siaddr"] == NO_ADDRESS
    assert known["offer"]["server_id"] == "192.0.2.1"
    assert bytes.fromhex(known["offer"]["option43_hex"]) == RPI_OPTION43
    assert stranger["offer"] is None
    # dnsmasq did see the stranger's DISCOVER; it chose not to answer.
    lab.wait_for_text(lab.path("dnsmasq.log"), f"{stranger['xid']} vendor class: PXEClient")


def test_dnsmasq_untagged_proxy_answers_strangers_without_the_pi_menu(lab, dnsmasq):
    lab.start_dnsmasq(proxy_conf(lab, "192.0.2.0,proxy"))

    known = lab.probe_dhcp(mac=PI4_MAC, profile="pi4")
    stranger = lab.probe_dhcp(mac=STRANGER_MAC, profile="pi4", timeout=2)

    assert bytes.fromhex(known["offer"]["option43_hex"]) == RPI_OPTION43
    # An empty PXE menu (discovery control 8): a Pi looks for "Raspberry Pi Boot" and ignores it.
    assert stranger["offer"]["yiaddr"] == NO_ADDRESS
    assert stranger["offer"]["pxe_menu_text"] is None
    assert b"Raspberry Pi Boot" not in bytes.fromhex(stranger["offer"]["option43_hex"])


def test_dnsmasq_tells_pxe_roms_and_ipxe_apart(lab, dnsmasq):
    lab.start_dnsmasq(
        [
            "port=0",
            f"interface={lab.server_if}",
            "bind-interfaces",
            "dhcp-range=192.0.2.100,192.0.2.199,255.255.255.0,1h",
            "no-ping",
            "log-dhcp",
            "dhcp-match=set:efi-x64,option:client-arch,7",
            "dhcp-match=set:efi-arm64,option:client-arch,11",
            "dhcp-userclass=set:ipxe,iPXE",
            "dhcp-boot=tag:!ipxe,tag:efi-x64,ipxe.efi",
            "dhcp-boot=tag:!ipxe,tag:efi-arm64,ipxe-arm64.efi",
            "dhcp-boot=tag:!ipxe,tag:!efi-x64,tag:!efi-arm64,undionly.kpxe",
            "dhcp-boot=tag:ipxe,http://192.0.2.1/boot.ipxe",
        ]
    )

    offers = {
        profile: lab.probe_dhcp(mac=STRANGER_MAC, profile=profile)["offer"]
        for profile in ("x86-bios", "x86-uefi", "arm64-uefi", "ipxe-bios", "ipxe-efi")
    }
    # All these clients list 67 in option 55, so dnsmasq puts the name there and leaves `file` empty.
    files = {profile: offer["bootfile"] for profile, offer in offers.items()}

    assert files == {
        "x86-bios": "undionly.kpxe",
        "x86-uefi": "ipxe.efi",
        "arm64-uefi": "ipxe-arm64.efi",
        "ipxe-bios": "http://192.0.2.1/boot.ipxe",
        "ipxe-efi": "http://192.0.2.1/boot.ipxe",
    }


def test_dhcp_watch_counts_every_offer(lab, dnsmasq):
    lab.start_dnsmasq(full_dhcp_conf(lab))

    watch = lab.dhcp_watch(mac=PI4_MAC, profile="pi4", seconds=2, interval=100)

    assert watch["sent"] > 0
    assert watch["answered"] == watch["sent"]
    assert watch["lost"] == []


# --- Kea -------------------------------------------------------------------------------------------

BOOT_URL_DEF = {"name": "pinet-boot-url", "code": 224, "type": "string", "space": "dhcp4"}


def test_kea_reservation_by_mac_with_option_224(lab, kea):
    config = lab.kea_config(
        [
            {
                "id": 1,
                "subnet": "192.0.2.0/24",
                "pools": [{"pool": "192.0.2.100 - 192.0.2.199"}],
                "reservations": [
                    {
                        "hw-address": PI4_MAC,
                        "ip-address": "192.0.2.30",
                        "option-data": [{"name": "pinet-boot-url", "data": BOOT_URL, "always-send": True}],
                    }
                ],
            }
        ],
        {"option-def": [BOOT_URL_DEF], "host-reservation-identifiers": ["hw-address"]},
    )
    lab.start_kea(config)

    result = lab.probe_dhcp(mac=PI4_MAC, profile="pi4", request=True)

    assert result["offer"]["yiaddr"] == "192.0.2.30"
    assert result["offer"]["boot_url"] == BOOT_URL
    assert result["ack"]["yiaddr"] == "192.0.2.30"
    assert wait_until(lambda: "192.0.2.30" in lab.path("kea-leases.csv").read_text())


def test_kea_relayed_request_gets_the_circuit_id_reservation(lab, kea):
    lab.add_client_address("192.0.2.254/24")
    config = lab.kea_config(
        [
            {"id": 1, "subnet": "192.0.2.0/24", "pools": [{"pool": "192.0.2.100 - 192.0.2.199"}]},
            {
                "id": 2,
                "subnet": "198.51.100.0/24",
                "relay": {"ip-addresses": ["192.0.2.254"]},
                "pools": [{"pool": "198.51.100.100 - 198.51.100.199"}],
                "reservations": [{"circuit-id": "'ge-0/0/7'", "ip-address": "198.51.100.7"}],
            },
        ],
        {"host-reservation-identifiers": ["hw-address", "circuit-id"]},
    )
    lab.start_kea(config)

    result = lab.probe_dhcp(
        mac=STRANGER_MAC, profile="pi4", request=True, giaddr="192.0.2.254", circuit_id="ge-0/0/7", remote_id="sw-a"
    )

    offer = result["offer"]
    assert offer["yiaddr"] == "198.51.100.7"
    assert offer["giaddr"] == "192.0.2.254"
    assert offer["relay_agent"]["1"] == b"ge-0/0/7".hex()
    assert result["ack"]["yiaddr"] == "198.51.100.7"


# --- teardown --------------------------------------------------------------------------------------


def test_teardown_removes_namespaces_and_daemons(dnsmasq):
    with netlab() as lab:
        names = {lab.server_ns, lab.client_ns}
        workdir = lab.workdir
        daemon = lab.start_dnsmasq(["port=0", f"interface={lab.server_if}", "bind-interfaces"])
        assert names <= netns_names()
        assert daemon.poll() is None

    assert daemon.returncode is not None
    assert names.isdisjoint(netns_names())
    assert not workdir.exists()


def test_teardown_runs_when_the_test_fails():
    with pytest.raises(RuntimeError, match="test body failed"), netlab() as lab:
        names = {lab.server_ns, lab.client_ns}
        sleeper = lab.start_daemon(lab.server_ns, ["sleep", "300"], lab.path("sleep.log"))
        raise RuntimeError("test body failed")

    assert sleeper.returncode is not None
    assert names.isdisjoint(netns_names())


def test_teardown_kills_stubborn_daemons_and_their_children():
    with netlab() as lab:
        names = {lab.server_ns, lab.client_ns}
        pid_file = lab.path("child.pid")
        # Ignores SIGTERM and leaves a forked child behind in the namespace.
        stubborn = lab.start_daemon(
            lab.server_ns,
            ["sh", "-c", f"trap '' TERM; sleep 300 & echo $! > {pid_file}; echo ready; wait"],
            lab.path("stubborn.log"),
        )
        lab.wait_for_text(lab.path("stubborn.log"), "ready", proc=stubborn)
        child = int(pid_file.read_text())
        lab.signal(stubborn, 0)
        lab.stop(stubborn, timeout=0.5)

    assert stubborn.returncode is not None
    assert names.isdisjoint(netns_names())
    assert wait_until(lambda: gone_or_zombie(child))
