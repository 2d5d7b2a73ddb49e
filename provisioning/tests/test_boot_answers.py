"""pinet's own rendered configurations, served by the real daemons inside a private network
namespace, answer scripted Raspberry Pi, x86 and iPXE clients as ARCHITECTURE.md says."""

from __future__ import annotations

import threading
import time

import pytest

from images.models import OSImage
from nodes.choices import BootMode, DhcpBackend
from nodes.models import Node, Site
from nodes.services import node_set_boot_mode
from provisioning.rendering import dnsmasq as dnsmasq_renderer
from provisioning.rendering.kea import option43_hex
from provisioning.selectors import live_boot_urls
from provisioning.services import node_request_reinstall, site_config_apply
from tests.factories import make_node
from tests.tools import need_program

from .labsite import start_dnsmasq
from .netlab import netlab

pytestmark = pytest.mark.django_db

PI_MENU_HEX = b"Raspberry Pi Boot".hex()
BOOT_FILES = {
    "start4.elf": bytes(range(256)) * 1200,  # 300 KB: many TFTP blocks
    "fixup4.dat": b"fixup4" * 100,
    "kernel8.img": b"kernel8" * 5000,
    "bcm2711-rpi-4-b.dtb": b"\xd0\x0d\xfe\xed" * 50,
    "config.txt": b"arm_64bit=1\n",
    "cmdline.txt": b"console=serial0,115200 root=PARTUUID=1234-02 rootfstype=ext4 rootwait\n",
}


@pytest.fixture
def lab():
    need_program("dnsmasq", "dnsmasq-base")
    with netlab(client_cidr="192.0.2.50/24") as lab:
        yield lab


@pytest.fixture
def data(lab, settings):
    # Inside the lab's world-readable work dir: dnsmasq reads files as "nobody".
    settings.PINET_CONFIG_ROOT = lab.path("config")
    settings.PINET_TFTP_ROOT = lab.path("tftp")
    settings.PINET_NFS_ROOT = lab.path("nfs")
    return lab.workdir


@pytest.fixture
def image(data):
    boot = data / "images" / "raspios" / "boot"
    boot.mkdir(parents=True)
    for name, content in BOOT_FILES.items():
        (boot / name).write_bytes(content)
        (boot / name).chmod(0o644)
    root = data / "nfs" / "images" / "raspios" / "root"
    root.mkdir(parents=True)
    for folder in (data / "images", data / "images" / "raspios", boot):
        folder.chmod(0o755)
    return OSImage.objects.create(
        name="raspios", arch="arm64", source="/x", state="ready", boot_path=str(boot), root_path=str(root)
    )


@pytest.fixture
def installer(data):
    boot = data / "images" / "installer" / "boot"
    boot.mkdir(parents=True)
    (boot / "start4.elf").write_bytes(b"installer start4")
    for folder in (data / "images", data / "images" / "installer", boot):
        folder.chmod(0o755)
    return OSImage.objects.create(
        name="pinet-installer", arch="arm64", kind="installer", source="/x", state="ready", boot_path=str(boot)
    )


def _installing(node) -> str:
    """Put the node into install mode the real way (a reinstall); returns its option 224 URL."""
    arch = "arm64" if node.board_model in ("pi3b", "pi3b+", "pi4b", "cm4", "pi5", "arm64-uefi") else "amd64"
    image = OSImage.objects.filter(name=f"os-{arch}").first() or OSImage.objects.create(
        name=f"os-{arch}", arch=arch, source="/x", state="ready", artefact_path="/x/disk.img.zst"
    )
    node_request_reinstall(node=node, image=image, by=None)
    return live_boot_urls(node.site)[node.pk]


def _site(lab, backend=DhcpBackend.DNSMASQ, **extra) -> Site:
    return Site.objects.create(
        name="Lab",
        slug="lab",
        interface=lab.server_if,
        subnet="192.0.2.0/24",
        boot_server="192.0.2.1",
        range_start="192.0.2.100",
        range_end="192.0.2.199",
        dhcp_backend=backend,
        **extra,
    )


def _start_dnsmasq(lab, site):
    return start_dnsmasq(lab, site)


def _dnsmasq_pid(lab, site) -> int:
    return int((lab.path("config") / site.slug / "dnsmasq" / "dnsmasq.pid").read_text())


def _wait_offer(lab, mac, predicate, profile="pi4", limit=15.0, **kwargs):
    """Probe until the answer satisfies predicate; clients retransmit the same way."""
    deadline = time.monotonic() + limit
    while True:
        offer = _offer(lab, mac, profile, timeout=1, **kwargs)
        if offer is not None and predicate(offer):
            return offer
        assert time.monotonic() < deadline, f"no matching answer within {limit} s; last: {offer}"


def _offer(lab, mac, profile="pi4", **kwargs):
    return lab.probe_dhcp(mac=mac, profile=profile, **kwargs)["offer"]


def _bootfile(offer) -> str:
    # dnsmasq puts the name in option 67 for PXE clients, Kea in the BOOTP file field.
    return offer.get("bootfile") or offer.get("file") or ""


def test_dnsmasq_answers_each_boot_mode(lab, data, image, installer):
    site = _site(lab)
    local = make_node(site=site, n=1, serial="9ffe0001")
    net = make_node(site=site, n=2, serial="9ffe0002", boot_mode=BootMode.NETBOOT, image=image)
    inst = make_node(site=site, n=3, serial="9ffe0003")
    inst_url = _installing(inst)
    _start_dnsmasq(lab, site)

    offer = _offer(lab, local.mac)
    assert offer["yiaddr"] == local.ip
    assert PI_MENU_HEX not in (offer.get("option43_hex") or "")

    offer = _offer(lab, net.mac, request=True)
    assert offer["yiaddr"] == net.ip and offer["siaddr"] == "192.0.2.1"
    assert offer["pxe_menu_text"] == "Raspberry Pi Boot"
    # The bytes dnsmasq builds are the ones Kea is told to send (netboot.md §1.1).
    assert offer["option43_hex"].upper() == option43_hex("Raspberry Pi Boot")

    offer = _offer(lab, inst.mac)
    assert offer["pxe_menu_text"] == "Raspberry Pi Boot" and offer["boot_url"] is None
    # The installer, once booted, asks for option 224 and gets its boot URL.
    offer = _offer(lab, inst.mac, "installer")
    assert offer["boot_url"] == inst_url and inst_url.startswith("http://127.0.0.1:8000/boot/")


def test_pi3b_gets_the_padded_menu_text(lab, data, image):
    site = _site(lab, pi3_reply_delay=0)
    node = make_node(
        site=site, n=4, mac="b8:27:eb:00:00:04", board_model="pi3b", boot_mode=BootMode.NETBOOT, image=image
    )
    _start_dnsmasq(lab, site)
    offer = _offer(lab, node.mac, profile="pi3")
    assert offer["options"]["43"].endswith((b"Raspberry Pi Boot   ".hex()) + "ff")


def test_x86_and_ipxe_clients_get_their_boot_files(lab, data):
    site = _site(lab)
    bios = make_node(site=site, n=5, mac="52:54:00:00:00:05", board_model="x86-bios")
    uefi = make_node(site=site, n=6, mac="52:54:00:00:00:06", board_model="x86-uefi")
    _installing(bios), _installing(uefi)
    _start_dnsmasq(lab, site)
    assert _bootfile(_offer(lab, bios.mac, "x86-bios")) == "undionly.kpxe"
    assert _bootfile(_offer(lab, uefi.mac, "x86-uefi")) == "ipxe.efi"
    script = _bootfile(_offer(lab, uefi.mac, "ipxe-efi"))
    assert script.startswith("http://127.0.0.1:8000/boot/ipxe/?mac=${net0/mac:hexhyp}&site=lab")


def test_proxy_mode_answers_only_network_booting_nodes(lab, data, image):
    site = _site(lab, backend=DhcpBackend.DNSMASQ_PROXY)
    local = make_node(site=site, n=1)
    net = make_node(site=site, n=2, boot_mode=BootMode.NETBOOT, image=image)
    _start_dnsmasq(lab, site)
    offer = _offer(lab, net.mac)
    assert offer["pxe_menu_text"] == "Raspberry Pi Boot" and offer["yiaddr"] == "0.0.0.0"
    assert _offer(lab, local.mac, timeout=2) is None
    assert _offer(lab, "dc:a6:32:99:99:99", timeout=2) is None


@pytest.mark.parametrize("scheme", ["mac", "serial"])
def test_pi4_files_come_from_the_node_directory(lab, data, image, scheme):
    site = _site(lab)
    node = make_node(site=site, n=2, serial="9ffefdef", boot_mode=BootMode.NETBOOT, image=image, ip="192.0.2.50")
    _start_dnsmasq(lab, site)
    lab.set_client_mac(node.mac)  # dnsmasq finds the node's directory by the client's MAC
    # EEPROM TFTP_PREFIX=2 asks "<mac>/file"; the default asks "<serial>/file".
    prefix = node.mac_dashed if scheme == "mac" else "9ffefdef"
    for name in ("start4.elf", "fixup4.dat", "kernel8.img", "bcm2711-rpi-4-b.dtb"):
        got = lab.probe_tftp(file=f"{prefix}/{name}", blksize=1024, tsize=True)
        assert got["ok"], got
        assert got["size"] == len(BOOT_FILES[name])
    cmdline = lab.probe_tftp(file=f"{prefix}/cmdline.txt", out=str(lab.path("cmdline.txt")))
    assert cmdline["ok"]
    text = lab.path("cmdline.txt").read_text()
    assert "root=/dev/nfs" in text and f"nfsroot=192.0.2.1:{image.root_path},vers=3" in text
    assert lab.probe_tftp(file=f"{prefix}/config.txt")["ok"]
    assert not lab.probe_tftp(file=f"{prefix}/no-such-file", timeout=3)["ok"]


def test_boot_mode_switch_with_dnsmasq_restarts_it(lab, data, image):
    site = _site(lab)
    node = make_node(site=site, n=2, boot_mode=BootMode.LOCAL, image=image)
    _start_dnsmasq(lab, site)
    first_pid = _dnsmasq_pid(lab, site)
    assert _offer(lab, node.mac).get("pxe_menu_text") is None
    node_set_boot_mode(node=Node.objects.get(pk=node.pk), mode=BootMode.NETBOOT, by=None)
    result = site_config_apply(site=site)
    # dnsmasq 2.90 cannot take this by SIGHUP (see provisioning/dhcp/dnsmasq.py): it restarts.
    assert result.reload == "restarted" and "dnsmasq/dnsmasq.conf" not in result.changed
    _wait_offer(lab, node.mac, lambda o: o.get("pxe_menu_text") == "Raspberry Pi Boot")
    assert _dnsmasq_pid(lab, site) != first_pid
    node_set_boot_mode(node=Node.objects.get(pk=node.pk), mode=BootMode.LOCAL, by=None)
    assert site_config_apply(site=site).reload == "restarted"
    _wait_offer(lab, node.mac, lambda o: o.get("pxe_menu_text") is None)


def test_new_node_is_served_without_any_signal(lab, data, image):
    site = _site(lab)
    make_node(site=site, n=1)
    _start_dnsmasq(lab, site)
    pid = _dnsmasq_pid(lab, site)
    node = make_node(site=site, n=2, boot_mode=BootMode.NETBOOT, image=image)
    result = site_config_apply(site=site)
    assert result.reload == "new nodes picked up by inotify"
    offer = _wait_offer(lab, node.mac, lambda o: o.get("pxe_menu_text") == "Raspberry Pi Boot")
    assert offer["yiaddr"] == node.ip and _dnsmasq_pid(lab, site) == pid


def test_rejected_config_keeps_dhcp_answering(lab, data, image, monkeypatch):
    site = _site(lab)
    node = make_node(site=site, n=2, boot_mode=BootMode.NETBOOT, image=image)
    _start_dnsmasq(lab, site)
    pid = _dnsmasq_pid(lab, site)
    watch: dict = {}
    thread = threading.Thread(target=lambda: watch.update(lab.dhcp_watch(mac=node.mac, seconds=4, interval=100)))
    thread.start()
    try:
        time.sleep(0.5)
        original = dnsmasq_renderer.render_main
        monkeypatch.setattr(dnsmasq_renderer, "render_main", lambda snap: original(snap) + "dhcp-range=broken\n")
        assert site_config_apply(site=site).status == "rejected"
        monkeypatch.undo()
        # A real change in between: a new node, which dnsmasq takes without a signal.
        make_node(site=site, n=3)
        result = site_config_apply(site=site)
        assert result.status == "applied", result.summary()
    finally:
        thread.join()
    assert watch["sent"] > 10 and watch["answered"] == watch["sent"], watch
    assert _dnsmasq_pid(lab, site) == pid


# --- Kea ---------------------------------------------------------------------------------------


def _start_kea(lab, site):
    need_program("kea-dhcp4", "kea-dhcp4-server")
    result = site_config_apply(site=site)
    assert result.status == "applied", result.summary()
    conf = lab.path("config") / site.slug / "kea" / "kea-dhcp4.json"
    run = lab.path("kea-run")
    run.mkdir(exist_ok=True)
    env = {"KEA_PIDFILE_DIR": str(run), "KEA_LOCKFILE_DIR": str(run)}
    proc = lab.start_daemon(lab.server_ns, ["kea-dhcp4", "-c", conf], lab.path("kea.log"), env=env)
    lab.wait_for_text(lab.path("kea.log"), "DHCP4_STARTED", proc=proc)
    return proc


def test_kea_answers_each_boot_mode(lab, data, image):
    site = _site(lab, backend=DhcpBackend.KEA)
    local = make_node(site=site, n=1)
    net = make_node(site=site, n=2, boot_mode=BootMode.NETBOOT, image=image)
    inst = make_node(site=site, n=3, board_model="x86-uefi", mac="52:54:00:00:00:03")
    bios = make_node(site=site, n=4, board_model="x86-bios", mac="52:54:00:00:00:04")
    inst_url, _ = _installing(inst), _installing(bios)
    _start_kea(lab, site)

    offer = _offer(lab, local.mac)
    assert offer["yiaddr"] == local.ip and "43" not in offer["options"]
    offer = _offer(lab, net.mac, request=True)
    assert offer["yiaddr"] == net.ip and offer["siaddr"] == "192.0.2.1"
    # Byte for byte what dnsmasq sends for pxe-service=0,"Raspberry Pi Boot".
    assert offer["option43_hex"].upper() == option43_hex("Raspberry Pi Boot")
    assert offer["vendor_class"] == "PXEClient"

    offer = _offer(lab, inst.mac, "x86-uefi")
    assert _bootfile(offer) == "ipxe.efi" and offer["siaddr"] == "192.0.2.1"
    assert offer["boot_url"] == inst_url
    assert _bootfile(_offer(lab, bios.mac, "x86-bios")) == "undionly.kpxe"
    script = _bootfile(_offer(lab, inst.mac, "ipxe-efi"))
    assert script == "http://127.0.0.1:8000/boot/ipxe/?mac=${net0/mac:hexhyp}&site=lab"


def test_kea_switches_boot_mode_in_place(lab, data, image):
    site = _site(lab, backend=DhcpBackend.KEA)
    node = make_node(site=site, n=2, boot_mode=BootMode.LOCAL, image=image)
    proc = _start_kea(lab, site)
    assert "43" not in _offer(lab, node.mac)["options"]
    node_set_boot_mode(node=Node.objects.get(pk=node.pk), mode=BootMode.NETBOOT, by=None)
    started = time.monotonic()
    assert site_config_apply(site=site).reload == "reloaded"
    offer = _wait_offer(lab, node.mac, lambda o: o.get("pxe_menu_text") == "Raspberry Pi Boot")
    print(f"new answer {time.monotonic() - started:.2f} s after the apply started")
    assert offer["yiaddr"] == node.ip and proc.poll() is None  # the same process: reloaded in place


def test_kea_relayed_request_gets_the_switch_port_reservation(lab, data, image):
    lab.add_client_address("192.0.2.254/24")
    site = Site.objects.create(
        name="Rack",
        slug="rack",
        interface=lab.server_if,
        subnet="198.51.100.0/24",
        boot_server="192.0.2.1",
        range_start="198.51.100.100",
        range_end="198.51.100.199",
        relay_addresses="192.0.2.254",
        dhcp_backend=DhcpBackend.KEA,
    )
    node = make_node(
        site=site,
        n=7,
        mac="dc:a6:32:00:00:77",
        ip="198.51.100.7",
        relay_circuit_id="ge-0/0/7",
        boot_mode=BootMode.NETBOOT,
        image=image,
    )
    _start_kea(lab, site)
    # The board behind switch port ge-0/0/7 gets its address whatever MAC it shows.
    answer = lab.probe_dhcp(mac="dc:a6:32:aa:bb:cc", profile="pi4", giaddr="192.0.2.254", circuit_id="ge-0/0/7")
    offer = answer["offer"]
    assert offer["yiaddr"] == node.ip and offer["pxe_menu_text"] == "Raspberry Pi Boot"
