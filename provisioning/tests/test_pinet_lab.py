"""pinet_lab end to end: two simulated Pi 4 boards are discovered by the lab site's listener;
one is adopted, given the lab's power strip, reinstalled (pinet cycles it, it boots the
installer over TFTP and its agent writes the image onto the board's SD card file) and switched
to network boot (it fetches its NFS-root boot files); then ``down`` leaves nothing behind."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from images.demo import missing_tools
from images.models import OSImage
from nodes.discovery_services import discovered_board_adopt
from nodes.models import DiscoveredBoard, Node, PowerAction
from nodes.power.services import node_power_set
from nodes.selectors import ip_next_free
from nodes.services import node_set_boot_mode
from provisioning.choices import InstallJobStatus
from provisioning.lab import control
from provisioning.lab.layout import POWER_PARAMS
from provisioning.lab.netns import Proc, netns_names
from provisioning.models import InstallJob, JobEvent
from provisioning.services import node_request_reinstall
from tests.tools import need, need_program

from .netlab import require_root_netns

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE_S = 60.0


def wait_for(what: str, check, lay: control.Layout):
    deadline = time.monotonic() + DEADLINE_S
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE_S:.0f} s\n{control.status_text()}"
        assert not control.health(lay, control.read_state(lay) or {}), control.status_text()
        time.sleep(0.25)


def board_state(lay: control.Layout, mac: str) -> dict:
    try:
        boards = json.loads(lay.boards_file.read_text())["boards"]
    except (OSError, ValueError):
        return {}
    return next((b for b in boards if b["mac"] == mac), {})


def _phase_ip(board: dict) -> tuple:
    return board.get("phase"), board.get("ip")


@pytest.fixture
def lab(settings, tmp_path):
    """What the lab needs, images and trees of this test's database only (the lab hands these
    paths to its processes), and a clean slate whatever a crashed run left."""
    require_root_netns()
    need_program("dnsmasq", "dnsmasq-base")
    need_program("busybox", "busybox-static")
    need_program("zstd", "zstd")
    need(not missing_tools(), f"the demo image needs: apt-get install {' '.join(missing_tools())}")
    for name in ("IMAGE", "NFS", "CONFIG", "TFTP"):
        folder = tmp_path / name.lower()
        folder.mkdir()
        setattr(settings, f"PINET_{name}_ROOT", folder)
    call_command("pinet_lab", "down", "--purge", stdout=io.StringIO())
    return control.layout()


def assert_nothing_left(lay: control.Layout, state: dict) -> None:
    assert not [ns for ns in netns_names() if ns.startswith(lay.prefix)]
    assert not [p["name"] for p in state["processes"] if Proc(**p).alive]
    assert control.read_state(lay) is None


def test_lab_boards_are_discovered_adopted_reinstalled_and_netbooted(settings, lab):
    lay = lab
    # The reinstall and the boot-mode switch each cycle the board, seconds apart.
    settings.PINET_POWER_MIN_INTERVAL = 0
    first, second = control.board_mac(1), control.board_mac(2)
    try:
        call_command("pinet_lab", "up", "--boards", "2", stdout=io.StringIO())
        state = control.read_state(lay)
        assert len(state["namespaces"]) == 4 and {p["name"] for p in state["processes"]} >= {
            "dnsmasq",
            "web",
            "worker",
            "discover",
            "boards",
        }

        # 1. Unknown boards keep asking; the listener records them as Pi 4s with their serials.
        heard = DiscoveredBoard.objects.filter(site__slug="lab", mac__in=[first, second])
        wait_for("both boards discovered", lambda: heard.count() == 2, lay)
        found = DiscoveredBoard.objects.get(mac=first)
        assert (found.board_model, found.serial, found.status) == ("pi4b", control.board_serial(1), "new")

        # 2. Adopt one, give it the lab's power strip, reinstall it: pinet cycles it through the
        # webhook driver, the board boots the installer and writes the image to its SD card.
        # With the address the Discovered page suggests (never the power strip's).
        address = ip_next_free(site=found.site)
        assert address not in (control.SERVER_IP, control.PDU_IP)
        node = discovered_board_adopt(board=found, hostname="lab-pi", ip=address, by=None)
        node_power_set(node=node, driver="webhook", params=POWER_PARAMS, by=None)
        image = OSImage.objects.get(name="demo-raspios", state="ready")
        job = node_request_reinstall(node=node, image=image, by=None)
        job = wait_for(
            "the install to end",
            lambda: InstallJob.objects.filter(pk=job.pk, status__in=["succeeded", "failed"]).first(),
            lay,
        )
        assert job.status == InstallJobStatus.SUCCEEDED, (job.error, control.status_text())
        stages = list(JobEvent.objects.filter(job=job).order_by("pk").values_list("stage", flat=True))
        assert {"installer started", "writing", "written and verified", "succeeded"} <= set(stages)
        cycle = PowerAction.objects.get(node=node, action="cycle")
        assert cycle.status == "succeeded" and control.PDU_IP in cycle.detail
        raw = subprocess.run(["zstd", "-dc", image.artefact_path], capture_output=True, check=True).stdout
        assert (lay.board_dir(1) / "sd.img").read_bytes() == raw
        # Its OS takes the address it was adopted with.
        running = ("sd", address)
        wait_for("the board to run from its SD card", lambda: running == _phase_ip(board_state(lay, first)), lay)
        assert Node.objects.get(pk=node.pk).boot_mode == "local"

        # 3. Network boot: the board is cycled again and fetches its NFS-root boot files.
        node_set_boot_mode(node=Node.objects.get(pk=node.pk), mode="netboot", by=None)
        wait_for("the board to boot from the network", lambda: board_state(lay, first).get("phase") == "netboot", lay)
        running = board_state(lay, first)
        assert f"nfsroot={control.SERVER_IP}:{image.root_path}" in running["cmdline"]
        assert {f["file"] for f in running["files"] if f["ok"]} >= {"config.txt", "start4.elf", "cmdline.txt"}

        # The other board was never adopted: it still has nothing to boot and keeps asking.
        assert board_state(lay, second)["phase"] in ("dhcp", "no-boot")
        assert DiscoveredBoard.objects.get(mac=second).status == "new"
    finally:
        call_command("pinet_lab", "down", stdout=io.StringIO())
    assert_nothing_left(lay, state)


def test_lab_qemu_machine_is_discovered_and_on_the_power_strip(lab):
    need_program("qemu-system-x86_64", "qemu-system-x86")
    need(any(rom.exists() for rom in control.IPXE_ROMS), "QEMU's iPXE ROMs are missing (apt-get install ipxe-qemu)")
    need(any(Path("/boot").glob("vmlinuz-*")), "no kernel for the x86 installer (apt-get install linux-image-amd64)")
    try:
        call_command("pinet_lab", "up", "--boards", "1", "--qemu", stdout=io.StringIO())
        state = control.read_state(lab)
        assert state["qemu"] and "vm" in {p["name"] for p in state["processes"]}
        assert OSImage.objects.filter(name="demo-x86", arch="amd64", state="ready").exists()
        assert OSImage.objects.filter(kind="installer", arch="amd64", state="ready").exists()
        # Its NIC's iPXE asks for a boot; the listener records a PC, not a Pi.
        heard = DiscoveredBoard.objects.filter(site__slug="lab", mac=control.VM_MAC)
        wait_for("the QEMU machine discovered", heard.exists, lab)
        assert (heard.get().board_model, heard.get().is_pi) == ("x86-bios", False)
        # The power strip switches it through QEMU's monitor.
        assert control.power(board="vm", action="off")["power"] == "off"
        assert "paused" in control.status_text()
        assert control.power(board="vm", action="on")["power"] == "on"
    finally:
        call_command("pinet_lab", "down", stdout=io.StringIO())
    assert_nothing_left(lab, state)


def test_lab_says_what_is_missing_instead_of_a_traceback(monkeypatch):
    monkeypatch.setattr(control.os, "geteuid", lambda: 1000)
    with pytest.raises(CommandError, match="pinet_lab up needs root"):
        call_command("pinet_lab", "up", stdout=io.StringIO())
    with pytest.raises(CommandError, match="pinet_lab down needs root"):
        call_command("pinet_lab", "down", stdout=io.StringIO())
    monkeypatch.setattr(control.os, "geteuid", lambda: 0)
    real_which = control.shutil.which

    def which(name, **kw):
        return None if name == "dnsmasq" else real_which(name, **kw)

    monkeypatch.setattr(control.shutil, "which", which)
    with pytest.raises(CommandError, match=r"dnsmasq is not installed: apt-get install dnsmasq-base"):
        call_command("pinet_lab", "up", stdout=io.StringIO())
    with pytest.raises(CommandError, match="--boards must be 1 to"):
        call_command("pinet_lab", "up", "--boards", "0", stdout=io.StringIO())


def test_status_of_a_lab_that_is_not_up(settings, tmp_path):
    settings.PINET_DATA_DIR = tmp_path
    out = io.StringIO()
    call_command("pinet_lab", "status", stdout=out)
    assert "The lab is down" in out.getvalue()
