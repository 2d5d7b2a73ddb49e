"""The discovery listener inside a private network, beside the site's own dnsmasq (or Kea) on
the same host: scripted Pi 3B/3B+/4/CM4/5 and x86 firmware DISCOVERs (broadcast and relayed) are
recorded with their model and serial, repeats are counted rather than duplicated, garbage is
ignored, the known node is only marked seen, and the DHCP server keeps answering throughout."""

from __future__ import annotations

import signal
import sys
import time

import pytest
from django.conf import settings as django_settings

from nodes.models import DiscoveredBoard, Node, Site
from provisioning.services import site_config_apply
from provisioning.tests.labsite import server_env, start_dnsmasq
from provisioning.tests.netlab import netlab
from tests.factories import make_node
from tests.tools import need_program

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_S = 30.0

# mac, probe profile, extra probe arguments, expected (model, serial, is_pi)
BOARDS = [
    ("dc:a6:32:10:00:04", "pi4", {"serial": "9ffefdef"}, ("pi4b", "9ffefdef", True)),
    ("e4:5f:01:10:00:05", "pi4", {"serial": "1000abcd", "revision": "00c03140"}, ("cm4", "1000abcd", True)),
    ("2c:cf:67:10:00:06", "pi5", {"serial": "5a5ac501"}, ("pi5", "5a5ac501", True)),
    ("b8:27:eb:10:00:07", "pi3", {"serial": "deadbeef"}, ("pi3b+", "deadbeef", True)),
    ("b8:27:eb:10:00:08", "pi3b", {}, ("pi3b", None, True)),
    ("52:54:00:10:00:09", "x86-bios", {}, ("x86-bios", None, False)),
    ("52:54:00:10:00:0a", "x86-uefi", {}, ("x86-uefi", None, False)),
]


def wait_for(what: str, check, proc=None):
    """Poll the database until check() is true; the listener writes on its own schedule."""
    deadline = time.monotonic() + WAIT_S
    while True:
        result = check()
        if result:
            return result
        if proc is not None:
            assert proc.poll() is None, f"the listener exited ({proc.returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"{what}: not seen within {WAIT_S} s"
        time.sleep(0.2)


def start_kea(lab, site):
    need_program("kea-dhcp4", "kea-dhcp4-server")
    result = site_config_apply(site=site)
    assert result.status == "applied", result.summary()
    conf = django_settings.PINET_CONFIG_ROOT / site.slug / "kea" / "kea-dhcp4.json"
    run = lab.path("kea-run")
    run.mkdir(exist_ok=True)
    env = {"KEA_PIDFILE_DIR": str(run), "KEA_LOCKFILE_DIR": str(run)}
    proc = lab.start_daemon(lab.server_ns, ["kea-dhcp4", "-c", conf], lab.path("kea.log"), env=env)
    lab.wait_for_text(lab.path("kea.log"), "DHCP4_STARTED", proc=proc)


@pytest.mark.parametrize("backend", ["dnsmasq", "kea"])
def test_listener_beside_the_dhcp_server_records_unknown_boards(settings, backend):
    need_program("dnsmasq", "dnsmasq-base")
    with netlab(client_cidr="192.0.2.50/24", client_extra_cidrs=["198.51.100.1/24"]) as lab:
        data = lab.path("data")
        data.mkdir()
        data.chmod(0o755)
        settings.PINET_CONFIG_ROOT, settings.PINET_TFTP_ROOT = data / "config", data / "tftp"
        settings.PINET_NFS_ROOT = data / "nfs"
        site = Site.objects.create(
            name="Lab",
            slug="lab",
            interface=lab.server_if,
            subnet="192.0.2.0/24",
            boot_server="192.0.2.1",
            range_start="192.0.2.100",
            range_end="192.0.2.199",
            discovery_enabled=True,
            dhcp_backend=backend,
        )
        known = make_node(site=site, n=1)  # dc:a6:32:00:00:01 at 192.0.2.11
        (start_kea if backend == "kea" else start_dnsmasq)(lab, site)

        log = lab.path("discover.log")
        argv = [sys.executable, django_settings.BASE_DIR / "manage.py", "pinet_discover", "--site", "lab"]
        # One second between writes about one MAC, so repeats arrive as a later, summed write.
        listener = lab.start_daemon(lab.server_ns, [*argv, "--write-interval", "1"], log, env=server_env(data))
        lab.wait_for_text(log, "listening on", proc=listener)
        # The DHCP server answers the known node while the listener listens.
        offer = lab.probe_dhcp(mac=known.mac, profile="pi4", timeout=10)["offer"]
        assert offer is not None and offer["yiaddr"] == known.ip

        for mac, profile, extra, _ in BOARDS:
            lab.probe("discover", iface=lab.client_if, mac=mac, profile=profile, **extra)
        # A relayed Pi 4 behind a switch port (option 82), unicast from the relay to the server.
        lab.probe(
            "discover",
            iface=lab.client_if,
            mac="dc:a6:32:10:00:0b",
            profile="pi4",
            giaddr="198.51.100.1",
            server_ip=lab.server_ip,
            circuit_id="ge-0/0/7",
            remote_id="hex:0006001122334455",
        )
        # An ordinary DHCP client is not a board asking for a boot.
        lab.probe("discover", iface=lab.client_if, mac="52:54:00:10:00:0c", profile="installer")
        garbage = lab.probe("garbage", iface=lab.client_if, mac="dc:a6:32:ba:d0:01", count=300, seed=7)
        assert garbage["sent"] == 300
        # Repeats of one board: counted, not duplicated.
        lab.probe("discover", iface=lab.client_if, mac=BOARDS[0][0], profile="pi4", serial="9ffefdef", count=4)

        expected_macs = {mac for mac, *_ in BOARDS} | {"dc:a6:32:10:00:0b"}
        wait_for(
            "every board recorded",
            lambda: set(DiscoveredBoard.objects.values_list("mac", flat=True)) >= expected_macs,
            listener,
        )
        for mac, _, _, (model, serial, is_pi) in BOARDS:
            board = DiscoveredBoard.objects.get(mac=mac)
            assert (board.board_model, board.serial, board.is_pi, board.status) == (model, serial, is_pi, "new"), mac
            assert board.site == site
        relayed = DiscoveredBoard.objects.get(mac="dc:a6:32:10:00:0b")
        assert (relayed.relay_address, relayed.circuit_id_text, relayed.board_model) == (
            "198.51.100.1",
            "ge-0/0/7",
            "pi4b",
        )
        assert relayed.remote_id_text == "switch 00:11:22:33:44:55"
        wait_for(
            "the Pi 4's five DISCOVERs counted",
            lambda: DiscoveredBoard.objects.get(mac=BOARDS[0][0]).seen_count == 5,
            listener,
        )
        assert DiscoveredBoard.objects.filter(mac=BOARDS[0][0]).count() == 1
        wait_for("the known node marked seen", lambda: Node.objects.get(pk=known.pk).last_seen, listener)
        assert not DiscoveredBoard.objects.filter(mac__in=[known.mac, "52:54:00:10:00:0c", "dc:a6:32:ba:d0:01"])
        assert DiscoveredBoard.objects.count() == len(expected_macs)

        # Still alive after the garbage, and still recording.
        assert listener.poll() is None
        lab.probe("discover", iface=lab.client_if, mac="d8:3a:dd:10:00:0d", profile="pi4", serial="0badf00d")
        wait_for("a board after the garbage", lambda: DiscoveredBoard.objects.filter(serial="0badf00d").exists())

        # The DHCP server still answers after all that (dnsmasq pings each new dynamic address
        # for a few seconds before offering it, one board at a time, hence the long wait).
        offer = lab.probe_dhcp(mac=known.mac, profile="pi4", timeout=WAIT_S)["offer"]
        assert offer is not None and offer["yiaddr"] == known.ip

        lab.signal(listener, signal.SIGTERM)
        assert listener.wait(10) == 0
        assert "stopped:" in log.read_text()
