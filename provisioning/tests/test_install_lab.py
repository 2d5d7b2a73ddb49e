"""A Pi-shaped install end to end inside a private network: pinet's rendered dnsmasq and a real
pinet web server in the server namespace; in the client namespace the scripted Pi bootloader
client, then pinet's installer agent under busybox (udhcpc asking for option 224, wget, sha256sum)
writing a file-backed SD card. Afterwards the board is answered as a local boot."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from images.models import OSImage
from nodes.choices import BootMode, NodeState
from nodes.models import Node, Site
from provisioning.choices import InstallJobStatus
from provisioning.models import InstallJob, JobEvent
from provisioning.services import node_request_reinstall, site_config_apply
from tests.factories import make_node
from tests.tools import need_program

from .labsite import installable_image, start_dnsmasq, start_web
from .netlab import netlab

pytestmark = pytest.mark.django_db(transaction=True)

AGENT = Path(__file__).resolve().parents[1] / "agent" / "pinet-agent.sh"
APPLETS = (
    "sh",
    "wget",
    "udhcpc",
    "ip",
    "sha256sum",
    "tee",
    "mkfifo",
    "cut",
    "tr",
    "sed",
    "cat",
    "rm",
    "sync",
    "printf",
    "echo",
)


def test_pi_installs_through_pinet_and_then_boots_local(settings):
    need_program("dnsmasq", "dnsmasq-base")
    need_program("zstd", "zstd")
    busybox = need_program("busybox", "busybox-static")
    with netlab() as lab:
        data = lab.path("data")
        settings.PINET_CONFIG_ROOT, settings.PINET_TFTP_ROOT = data / "config", data / "tftp"
        settings.PINET_NFS_ROOT, settings.PINET_IMAGE_ROOT = data / "nfs", data / "images"
        settings.PINET_BOOT_URL_BASE = "http://192.0.2.1:8000"
        for d in (data, data / "images", data / "installer"):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)

        # The OS image: a small "disk" and its zstd install artefact.
        raw = os.urandom(1 << 20) + bytes(2 << 20) + b"PINET-INSTALLED-DISK" + os.urandom(4096)
        image = installable_image(data, raw, name="raspios", arch="arm64")
        (data / "installer" / "start4.elf").write_bytes(b"pinet installer start4.elf")
        OSImage.objects.create(
            name="pinet-installer",
            arch="arm64",
            kind="installer",
            source="/x",
            state="ready",
            boot_path=str(data / "installer"),
        )
        site = Site.objects.create(
            name="Lab",
            slug="lab",
            interface=lab.server_if,
            subnet="192.0.2.0/24",
            boot_server="192.0.2.1",
            range_start="192.0.2.100",
            range_end="192.0.2.199",
        )
        node = make_node(site=site, n=2, serial="9ffe0002", state=NodeState.DEPLOYED)
        job = node_request_reinstall(node=node, image=image, by=None)
        start_dnsmasq(lab, site)
        web_log = lab.path("gunicorn.log")
        start_web(lab, data)

        # 1. The board's bootloader: PXE answer and the installer's files over TFTP.
        lab.set_client_mac(node.mac)
        offer = lab.probe_dhcp(mac=node.mac, profile="pi4")["offer"]
        assert offer["pxe_menu_text"] == "Raspberry Pi Boot"
        lab.add_client_address("192.0.2.12/24")
        assert lab.probe_tftp(file="9ffe0002/start4.elf")["ok"]
        lab.run_in(lab.client_ns, ["ip", "addr", "flush", "dev", lab.client_if], check=True)

        # 2. The installer: busybox applets first on PATH, as in pinet's initramfs.
        bin_dir = lab.path("bin")
        bin_dir.mkdir()
        for applet in APPLETS:
            os.symlink(busybox, bin_dir / applet)
        sd_card = lab.path("sd-card.img")
        sd_card.write_bytes(bytes(len(raw)))
        agent_env = {
            "PATH": f"{bin_dir}:{os.path.dirname(shutil.which('zstd'))}",
            "PINET_IFACE": lab.client_if,
            "PINET_TARGET": str(sd_card),
            "PINET_NO_REBOOT": "1",
            "PINET_STATE": str(lab.path("agent")),
        }
        done = lab.run_in(
            lab.client_ns, [busybox, "sh", AGENT], env=agent_env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr + web_log.read_text()[-2000:]

        # 3. What pinet recorded, and what is on the card.
        assert sd_card.read_bytes() == raw
        job = InstallJob.objects.get(pk=job.pk)
        assert job.status == InstallJobStatus.SUCCEEDED and job.percent == 100
        stages = list(JobEvent.objects.filter(job=job).values_list("stage", flat=True))
        assert stages[0] == "requested" and "installer started" in stages and "writing" in stages
        # A file-backed card has no partition devices to mount: the agent says so and carries on.
        assert stages[-3:] == ["written and verified", "configuration skipped", "succeeded"]
        node = Node.objects.get(pk=node.pk)
        assert (node.boot_mode, node.state, node.image_id) == (BootMode.LOCAL, NodeState.DEPLOYED, image.pk)

        # 4. The board reboots: it is answered as a local boot and never installs again.
        result = site_config_apply(site=site)
        assert result.status == "applied"
        deadline = time.monotonic() + 20
        while True:
            offer = lab.probe_dhcp(mac=node.mac, profile="pi4", timeout=1)["offer"]
            if offer is not None and offer.get("pxe_menu_text") is None:
                break
            assert time.monotonic() < deadline, offer
        assert lab.probe_dhcp(mac=node.mac, profile="installer", timeout=2)["offer"].get("boot_url") is None
