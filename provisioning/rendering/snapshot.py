"""The frozen picture of a site that every renderer works from (STYLE.md R7)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

# What the DHCP server tells a node, derived from its boot mode and what it can boot.
ANSWER_LOCAL = "local"  # an address and nothing to boot: the Pi falls through to its SD card
ANSWER_NETBOOT = "netboot"  # PXE + TFTP of the image's boot files, root over NFS
ANSWER_INSTALL = "install"  # PXE + TFTP of the installer, option 224 = the boot URL

# Boot files the x86/arm64 PXE ROMs fetch before iPXE takes over (Debian's ipxe package;
# there is no arm64 build in Debian 12, so that one is the operator's to supply).
IPXE_BIOS = "undionly.kpxe"
IPXE_EFI_X64 = "ipxe.efi"
IPXE_EFI_ARM64 = "arm64/snponly.efi"


@dataclass(frozen=True)
class Paths:
    """Where a site's generated files live; pinet_render points all of them into one directory."""

    dnsmasq_dir: str
    kea_dir: str
    tftp_root: str
    exports_dir: str
    nfs_root: str

    @property
    def dnsmasq_conf(self) -> str:
        return f"{self.dnsmasq_dir}/dnsmasq.conf"

    @property
    def hostsdir(self) -> str:
        return f"{self.dnsmasq_dir}/hosts.d"

    @property
    def optsdir(self) -> str:
        return f"{self.dnsmasq_dir}/opts.d"

    @property
    def kea_conf(self) -> str:
        return f"{self.kea_dir}/kea-dhcp4.json"


@dataclass(frozen=True)
class HostSnapshot:
    node_id: int
    hostname: str
    mac: str
    ip: IPv4Address | None
    board_model: str
    is_pi: bool
    pi3_rom: bool  # the Pi 3B ROM: trailing-space option 43, reply delay
    serial8: str | None  # low 32 bits: the default EEPROM TFTP prefix
    client_id: str  # option 97, "aa:bb:…" or ""
    circuit_id: str  # option 82 sub-option 1, hex "aa:bb:…" or ""
    remote_id: str  # option 82 sub-option 2, hex or ""
    answer: str
    boot_dir: str  # the image's (or installer's) boot files; "" for local
    root_path: str  # the image's NFS root tree; "" unless netboot
    data_path: str  # the node's writable NFS directory; "" unless netboot
    boot_url: str  # option 224; "" unless install

    @property
    def mac_dashed(self) -> str:
        return self.mac.replace(":", "-")

    @property
    def tag(self) -> str:
        return f"n{self.node_id}"


@dataclass(frozen=True)
class SiteSnapshot:
    slug: str
    name: str
    backend: str
    interface: str
    subnet: IPv4Network
    boot_server: IPv4Address
    gateway: IPv4Address | None
    dns_servers: tuple[IPv4Address, ...]
    range_start: IPv4Address | None
    range_end: IPv4Address | None
    nfs_server: IPv4Address
    relay_addresses: tuple[IPv4Address, ...]
    dns_domain: str
    lease_time: int
    pi3_reply_delay: int
    boot_url_base: str
    paths: Paths
    hosts: tuple[HostSnapshot, ...]
    # Why a node answers differently from its boot mode (e.g. netboot without a ready image).
    notes: tuple[str, ...] = field(default=())

    @property
    def ipxe_script_url(self) -> str:
        # iPXE expands ${…} in the boot file name itself, so one static line serves every node.
        return f"{self.boot_url_base}/boot/ipxe/?mac=${{net0/mac:hexhyp}}&site={self.slug}"

    @property
    def lease_max(self) -> int:
        # Sized by the subnet (no site can lease more addresses than it has), not by the node
        # count, so adding a node never changes the main file and never forces a restart.
        return max(1000, self.subnet.num_addresses)


def content_hash(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()


def bundle_text(files: dict[str, str]) -> str:
    """All files of a rendering as one text, for ConfigRevision.content and diffs."""
    return "".join(f"==> {name} <==\n{files[name]}" for name in sorted(files))
