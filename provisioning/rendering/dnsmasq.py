"""dnsmasq configuration: a static main file plus one file per node in dhcp-hostsdir and
dhcp-optsdir, so adding, changing or removing a node never needs a restart (a SIGHUP
re-reads those directories; netboot.md §3). Site-level changes change the main file,
which only a restart re-reads.

Tags, one set per node by its hosts.d line:
  n<id>      the node itself (per-node options in opts.d)
  pxe-pi     a Raspberry Pi to network-boot (netboot or install)
  pxe-pi3b   the same for a Pi 3B, whose ROM wants three trailing spaces in option 43
  pxe-x86    an x86/arm64 PXE machine to network-boot (via iPXE)
  pinet-pxe  any node pinet answers in proxy mode
"""

from __future__ import annotations

import re

from . import HEADER, ConfigRenderError
from .snapshot import (
    ANSWER_INSTALL,
    ANSWER_LOCAL,
    IPXE_BIOS,
    IPXE_EFI_ARM64,
    IPXE_EFI_X64,
    HostSnapshot,
    SiteSnapshot,
)

PROXY = "dnsmasq-proxy"
# netboot.md §1.1: the bootloader matches this text in option 43; the Pi 3B ROM's length
# bug needs three trailing spaces, later bootloaders match a substring.
PI_MENU = "Raspberry Pi Boot"
PI3B_MENU = "Raspberry Pi Boot   "
PI3_OUIS = ("b8:27:eb",)


def _quote(text: str) -> str:
    if any(c in text for c in '"\\\n\r') or not text.isprintable():
        raise ConfigRenderError(f"{text!r} cannot be written into a dnsmasq file")
    return f'"{text}"'


def _answer_tags(host: HostSnapshot) -> list[str]:
    if host.answer == ANSWER_LOCAL:
        return []
    if host.is_pi:
        return ["pxe-pi3b" if host.pi3_rom else "pxe-pi"]
    return ["pxe-x86"]


def host_line(host: HostSnapshot, snap: SiteSnapshot) -> str:
    """One dhcp-host line (without the 'dhcp-host=' of the main-file syntax)."""
    parts = [host.mac, f"set:{host.tag}", *(f"set:{t}" for t in _answer_tags(host))]
    if snap.backend == PROXY:
        if host.answer != ANSWER_LOCAL:
            parts.append("set:pinet-pxe")
        # The site's own DHCP server owns addresses and names.
        return ",".join(parts)
    if host.ip is not None:
        parts.append(str(host.ip))
    parts += [host.hostname, str(snap.lease_time)]
    return ",".join(parts)


def option_lines(host: HostSnapshot, snap: SiteSnapshot) -> list[str]:
    """Per-node options (without 'dhcp-option='). Lines in opts.d cannot be forced, so they
    reach only clients that ask for them: pinet's installer requests option 224."""
    if host.answer == ANSWER_INSTALL and host.boot_url:
        return [f"tag:{host.tag},224,{_quote(host.boot_url)}"]
    return []


_WORD = re.compile(r"^[A-Za-z0-9_.:/-]+$")


def _checked_site(snap: SiteSnapshot) -> None:
    """Site values go into the main file unquoted: refuse anything but plain words."""
    for label, value in (
        ("interface", snap.interface),
        ("DNS domain", snap.dns_domain or "x"),
        *((name, getattr(snap.paths, name)) for name in ("dnsmasq_dir", "tftp_root")),
    ):
        if not _WORD.match(value):
            raise ConfigRenderError(f"the site's {label} {value!r} cannot be written into a dnsmasq file")


def render_main(snap: SiteSnapshot) -> str:
    _checked_site(snap)
    p = snap.paths
    proxy = snap.backend == PROXY
    lines = [
        HEADER,
        f"# Site {snap.slug}: {'proxy DHCP beside an existing server' if proxy else 'full DHCP'} on {snap.interface}.",
        f"interface={snap.interface}",
        "bind-dynamic",
        "log-dhcp",
    ]
    if snap.dns_domain and not proxy:
        lines += ["no-resolv", "no-hosts", f"domain={snap.dns_domain}", f"local=/{snap.dns_domain}/"]
    else:
        lines.append("port=0")
    lines += [
        f"pid-file={p.dnsmasq_dir}/dnsmasq.pid",
        f"dhcp-leasefile={p.dnsmasq_dir}/leases",
        f"dhcp-lease-max={snap.lease_max}",
    ]
    netmask = snap.subnet.netmask
    if proxy:
        lines.append(f"dhcp-range=tag:pinet-pxe,{snap.subnet.network_address},proxy,{netmask}")
    else:
        lines.append("dhcp-authoritative")
        if snap.range_start and snap.range_end:
            lines.append(f"dhcp-range={snap.range_start},{snap.range_end},{netmask},{snap.lease_time}")
        # Reserved addresses are served even without a dynamic range.
        lines.append(f"dhcp-range={snap.subnet.network_address},static,{netmask},{snap.lease_time}")
        if snap.gateway:
            lines.append(f"dhcp-option=option:router,{snap.gateway}")
        if snap.dns_servers:
            lines.append(f"dhcp-option=option:dns-server,{','.join(str(a) for a in snap.dns_servers)}")
        if snap.dns_domain:
            lines.append(f"dhcp-option=option:domain-name,{snap.dns_domain}")
    lines += [f"dhcp-hostsdir={p.hostsdir}", f"dhcp-optsdir={p.optsdir}"]
    if snap.pi3_reply_delay:
        lines += [
            "# The Pi 3 ROM misses replies that arrive too fast.",
            *(f"dhcp-mac=set:pi3,{oui}:*:*:*" for oui in PI3_OUIS),
            f"dhcp-reply-delay=tag:pi3,{snap.pi3_reply_delay}",
        ]
    lines += [
        "# Raspberry Pi network boot: option 43 with the menu text the bootloader looks for.",
        f"pxe-service=tag:pxe-pi,0,{_quote(PI_MENU)}",
        f"pxe-service=tag:pxe-pi3b,0,{_quote(PI3B_MENU)}",
        "# x86/arm64: the PXE ROM loads iPXE by TFTP; iPXE (user class iPXE) gets pinet's script.",
        "dhcp-userclass=set:ipxe,iPXE",
        "dhcp-match=set:bios,option:client-arch,0",
        "dhcp-match=set:efi-x64,option:client-arch,7",
        "dhcp-match=set:efi-x64,option:client-arch,9",
        "dhcp-match=set:efi-arm64,option:client-arch,11",
        f"dhcp-boot=tag:pxe-x86,tag:!ipxe,tag:bios,{IPXE_BIOS},,{snap.boot_server}",
        f"dhcp-boot=tag:pxe-x86,tag:!ipxe,tag:efi-x64,{IPXE_EFI_X64},,{snap.boot_server}",
        f"dhcp-boot=tag:pxe-x86,tag:!ipxe,tag:efi-arm64,{IPXE_EFI_ARM64},,{snap.boot_server}",
        f"dhcp-boot=tag:pxe-x86,tag:ipxe,{snap.ipxe_script_url}",
        "enable-tftp",
        f"tftp-root={p.tftp_root}",
        "# One directory per node MAC (EEPROM TFTP_PREFIX=2 and the Pi 3 ROM).",
        "tftp-unique-root=mac",
    ]
    return "\n".join(lines) + "\n"


def render(snap: SiteSnapshot) -> dict[str, str]:
    """Every file of the site's dnsmasq configuration, by path relative to the dnsmasq dir."""
    files = {"dnsmasq.conf": render_main(snap)}
    for host in sorted(snap.hosts, key=lambda h: h.mac):
        if snap.backend == PROXY and host.answer == ANSWER_LOCAL:
            continue  # the site's DHCP server answers it; pinet stays silent
        files[f"hosts.d/{host.mac_dashed}"] = host_line(host, snap) + "\n"
        options = option_lines(host, snap)
        if options:
            files[f"opts.d/{host.mac_dashed}"] = "\n".join(options) + "\n"
    return files


def validation_text(files: dict[str, str]) -> str:
    """One file for `dnsmasq --test`, which never reads hostsdir/optsdir (netboot.md §3):
    the main file plus every host and option line in main-file syntax."""
    lines = [files["dnsmasq.conf"]]
    for name in sorted(files):
        prefix = "dhcp-host=" if name.startswith("hosts.d/") else "dhcp-option=" if name.startswith("opts.d/") else None
        if prefix:
            lines += [prefix + line for line in files[name].splitlines() if line]
    return "\n".join(lines) + "\n"


def tftp_only(snap: SiteSnapshot) -> str:
    """dnsmasq as the TFTP server for a Kea site (no DHCP, no DNS)."""
    return (
        "\n".join(
            [
                HEADER,
                f"# Site {snap.slug}: TFTP for the Kea DHCP server.",
                f"interface={snap.interface}",
                "bind-dynamic",
                "port=0",
                f"pid-file={snap.paths.dnsmasq_dir}/dnsmasq.pid",
                "enable-tftp",
                f"tftp-root={snap.paths.tftp_root}",
                "tftp-unique-root=mac",
            ]
        )
        + "\n"
    )
