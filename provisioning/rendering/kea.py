"""ISC Kea DHCPv4 configuration, built as a dict and dumped as sorted JSON (STYLE.md R8).

Per-node answers ride on host reservations (hw-address, circuit-id or client-id), which
assign a class (pinet-pi, pinet-pi3b, pinet-x86). Classes whose test mentions KNOWN are
evaluated after the reservation lookup, so they can see those classes (Kea ARM, "Using
Classes" / host reservation ordering).
"""

from __future__ import annotations

import json

from . import ConfigRenderError
from .snapshot import ANSWER_INSTALL, ANSWER_LOCAL, IPXE_BIOS, IPXE_EFI_ARM64, IPXE_EFI_X64, SiteSnapshot

PI_MENU = "Raspberry Pi Boot"
PI3B_MENU = "Raspberry Pi Boot   "
SUBNET_ID = 1


def option43_hex(menu: str) -> str:
    """The PXE vendor options dnsmasq sends for pxe-service=0,"<menu>" (netboot.md §1.1):
    discovery control 3, menu prompt (timeout 0, "PXE"), one boot menu item, end."""
    text = menu.encode()
    body = bytes([6, 1, 3]) + bytes([10, 4, 0]) + b"PXE" + bytes([9, len(text) + 3, 0, 0, len(text)]) + text
    return (body + b"\xff").hex().upper()


def _pi_class(name: str, menu: str, snap: SiteSnapshot) -> dict:
    return {
        "name": name,
        # No test on option 60: some Pi 4 bootloaders leave it out of their REQUEST (netboot.md §1.1).
        "test": f"member('KNOWN') and member('{name}-host')",
        "option-def": [{"name": "vendor-encapsulated-options", "code": 43, "type": "binary"}],
        "option-data": [
            {"name": "vendor-encapsulated-options", "data": option43_hex(menu), "always-send": True},
            {"name": "vendor-class-identifier", "data": "PXEClient", "always-send": True},
        ],
        "next-server": str(snap.boot_server),
    }


def _classes(snap: SiteSnapshot) -> list[dict]:
    pxe = "member('KNOWN') and member('pinet-x86-host')"
    server = str(snap.boot_server)
    return [
        # Marker classes assigned by reservations; no test, no options of their own.
        {"name": "pinet-pi-host"},
        {"name": "pinet-pi3b-host"},
        {"name": "pinet-x86-host"},
        _pi_class("pinet-pi", PI_MENU, snap),
        _pi_class("pinet-pi3b", PI3B_MENU, snap),
        # option[77].text renders binary data; .hex compares the raw bytes (netboot.md §4).
        {"name": "pinet-ipxe", "test": f"{pxe} and option[77].hex == 'iPXE'", "boot-file-name": snap.ipxe_script_url},
        {
            "name": "pinet-efi-x64",
            "test": f"{pxe} and not (option[77].hex == 'iPXE') and "
            "(option[93].hex == 0x0007 or option[93].hex == 0x0009)",
            "boot-file-name": IPXE_EFI_X64,
            "next-server": server,
        },
        {
            "name": "pinet-efi-arm64",
            "test": f"{pxe} and not (option[77].hex == 'iPXE') and option[93].hex == 0x000b",
            "boot-file-name": IPXE_EFI_ARM64,
            "next-server": server,
        },
        {
            "name": "pinet-bios",
            "test": f"{pxe} and not (option[77].hex == 'iPXE') and option[93].hex == 0x0000",
            "boot-file-name": IPXE_BIOS,
            "next-server": server,
        },
    ]


def reservation(host, snap: SiteSnapshot) -> dict:
    # Keyed by switch port where the node has one (relayed networks), else by MAC. Never by
    # Kea's client-id: that is option 61, which Pis do not send (their option 97 is not it).
    reservation = {"circuit-id": host.circuit_id} if host.circuit_id else {"hw-address": host.mac}
    reservation["hostname"] = host.hostname
    if host.ip is not None:
        reservation["ip-address"] = str(host.ip)
    if host.answer != ANSWER_LOCAL:
        marker = "pinet-x86-host" if not host.is_pi else "pinet-pi3b-host" if host.pi3_rom else "pinet-pi-host"
        reservation["client-classes"] = [marker]
    if host.answer == ANSWER_INSTALL and host.boot_url:
        # Neither the Pi nor iPXE asks for option 224 (netboot.md §4), hence always-send.
        reservation["option-data"] = [{"name": "pinet-boot-url", "data": host.boot_url, "always-send": True}]
    return reservation


def _check_ports(snap: SiteSnapshot) -> None:
    seen: dict[str, str] = {}
    for host in snap.hosts:
        if host.circuit_id and host.circuit_id in seen:
            raise ConfigRenderError(
                f"{seen[host.circuit_id]} and {host.hostname} share circuit-id {host.circuit_id}; Kea keys "
                "reservations by circuit-id alone"
            )
        seen[host.circuit_id] = host.hostname


def config(snap: SiteSnapshot, *, interfaces: list[str] | None = None) -> dict:
    _check_ports(snap)
    subnet: dict = {
        "id": SUBNET_ID,
        "subnet": str(snap.subnet),
        "pools": [{"pool": f"{snap.range_start} - {snap.range_end}"}] if snap.range_start and snap.range_end else [],
        "option-data": [],
        "reservations": [reservation(h, snap) for h in sorted(snap.hosts, key=lambda h: h.mac)],
    }
    if snap.gateway:
        subnet["option-data"].append({"name": "routers", "data": str(snap.gateway)})
    if snap.dns_servers:
        subnet["option-data"].append({"name": "domain-name-servers", "data": ", ".join(map(str, snap.dns_servers))})
    if snap.relay_addresses:
        subnet["relay"] = {"ip-addresses": [str(a) for a in snap.relay_addresses]}
    kea_dir = snap.paths.kea_dir
    return {
        "Dhcp4": {
            "interfaces-config": {"interfaces": interfaces if interfaces is not None else [snap.interface]},
            "control-socket": {"socket-type": "unix", "socket-name": f"{kea_dir}/kea4.sock"},
            "lease-database": {
                "type": "memfile",
                "persist": True,
                "name": f"{kea_dir}/leases4.csv",
                "lfc-interval": 3600,
            },
            "valid-lifetime": snap.lease_time,
            "authoritative": True,
            "host-reservation-identifiers": ["hw-address", "circuit-id", "client-id"],
            "option-def": [{"name": "pinet-boot-url", "code": 224, "type": "string", "space": "dhcp4"}],
            "client-classes": _classes(snap),
            "subnet4": [subnet],
            "loggers": [{"name": "kea-dhcp4", "severity": "INFO", "output_options": [{"output": "stdout"}]}],
            "user-context": {"generated-by": "pinet", "site": snap.slug, "nodes": len(snap.hosts)},
        }
    }


def render(snap: SiteSnapshot) -> dict[str, str]:
    return {"kea-dhcp4.json": json.dumps(config(snap), indent=2, sort_keys=True) + "\n"}


def validation_text(snap: SiteSnapshot) -> str:
    # kea-dhcp4 -t fails on interfaces the validating host lacks (netboot.md §4).
    return json.dumps(config(snap, interfaces=["*"]), indent=2, sort_keys=True) + "\n"
