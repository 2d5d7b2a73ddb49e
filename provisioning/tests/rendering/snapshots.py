"""Hand-built snapshots for the renderer tests: no database, the same bytes every run."""

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

from provisioning.rendering.snapshot import (
    ANSWER_INSTALL,
    ANSWER_LOCAL,
    ANSWER_NETBOOT,
    HostSnapshot,
    Paths,
    SiteSnapshot,
)

PATHS = Paths(
    dnsmasq_dir="/srv/pinet/config/lab/dnsmasq",
    kea_dir="/srv/pinet/config/lab/kea",
    tftp_root="/srv/pinet/tftp/lab",
    exports_dir="/srv/pinet/config/lab/exports",
    nfs_root="/srv/pinet/nfs",
)
IMAGE_BOOT = "/srv/pinet/images/raspios-lite/3/boot"
IMAGE_ROOT = "/srv/pinet/nfs/images/raspios-lite/3/root"
INSTALLER_BOOT = "/srv/pinet/images/pinet-installer/1/boot"


def host(n: int, **fields) -> HostSnapshot:
    base = dict(
        node_id=n,
        hostname=f"pi-{n}",
        mac=f"dc:a6:32:00:00:{n:02x}",
        ip=IPv4Address(f"192.0.2.{10 + n}"),
        board_model="pi4b",
        is_pi=True,
        pi3_rom=False,
        serial8=f"9ffe00{n:02x}",
        client_id="",
        circuit_id="",
        remote_id="",
        answer=ANSWER_LOCAL,
        boot_dir="",
        root_path="",
        data_path="",
        boot_url="",
    )
    base.update(fields)
    return HostSnapshot(**base)


def netboot(n: int, **fields) -> HostSnapshot:
    values = dict(
        answer=ANSWER_NETBOOT, boot_dir=IMAGE_BOOT, root_path=IMAGE_ROOT, data_path=f"/srv/pinet/nfs/nodes/lab/pi-{n}"
    )
    return host(n, **{**values, **fields})


def install(n: int, **fields) -> HostSnapshot:
    values = dict(
        answer=ANSWER_INSTALL,
        boot_dir=INSTALLER_BOOT,
        boot_url=f"http://192.0.2.1:8000/boot/mac/dc-a6-32-00-00-{n:02x}/?site=lab",
    )
    return host(n, **{**values, **fields})


HOSTS = (
    host(1),
    netboot(2),
    netboot(3, board_model="pi3b", mac="b8:27:eb:00:00:03", pi3_rom=True, serial8="00000003"),
    install(4),
    host(5, board_model="x86-bios", is_pi=False, mac="52:54:00:00:00:05", serial8=None, answer=ANSWER_NETBOOT),
    install(6, board_model="x86-uefi", is_pi=False, mac="52:54:00:00:00:06", serial8=None, boot_dir=""),
    host(7, board_model="arm64-uefi", is_pi=False, mac="52:54:00:00:00:07", serial8=None),
    netboot(
        8,
        board_model="pi5",
        mac="d8:3a:dd:00:00:08",
        serial8="c5000008",
        circuit_id="67:65:2d:30:2f:30:2f:38",
        remote_id="73:77:2d:61",
    ),
    host(9, ip=None, client_id="00:52:50:69:34:11:31:c0:00"),
)

SITE = SiteSnapshot(
    slug="lab",
    name="Lab",
    backend="dnsmasq",
    interface="pinet0",
    subnet=IPv4Network("192.0.2.0/24"),
    boot_server=IPv4Address("192.0.2.1"),
    gateway=IPv4Address("192.0.2.1"),
    dns_servers=(IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")),
    range_start=IPv4Address("192.0.2.100"),
    range_end=IPv4Address("192.0.2.199"),
    nfs_server=IPv4Address("192.0.2.1"),
    relay_addresses=(),
    dns_domain="",
    lease_time=3600,
    pi3_reply_delay=1,
    boot_url_base="http://192.0.2.1:8000",
    paths=PATHS,
    hosts=HOSTS,
)

PROXY_SITE = replace(SITE, backend="dnsmasq-proxy", gateway=None, range_start=None, range_end=None)
KEA_SITE = replace(SITE, backend="kea", relay_addresses=(IPv4Address("192.0.2.254"),))
DNS_SITE = replace(SITE, dns_domain="lab.example", pi3_reply_delay=0)
