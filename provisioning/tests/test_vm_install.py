"""An x86 virtual machine installs through pinet, end to end, inside a private network:
PXE ROM (Debian's iPXE) -> pinet's dnsmasq -> pinet's iPXE script -> the installer kernel and
initramfs built by pinet_build_installer -> the agent writes the image to the VM's disk ->
done -> the site worker switches the node to local -> the VM reboots and boots its disk, which
prints a marker on the serial console."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from images.demo import serial_boot_code
from nodes.choices import BootMode, NodeState
from nodes.models import Node, Site
from provisioning.choices import InstallJobStatus
from provisioning.models import InstallJob, JobEvent
from provisioning.services import node_request_reinstall
from tests.factories import make_node
from tests.tools import need, need_program

from .labsite import installable_image, start_dnsmasq, start_web, start_worker
from .netlab import netlab

pytestmark = pytest.mark.django_db(transaction=True)

MARKER = b"PINET-DISK-BOOTED"
VM_MAC = "52:54:00:12:34:56"


def marker_disk(size: int = 1 << 20) -> bytes:
    """A disk whose MBR boot code writes MARKER to COM1 and halts (16-bit real mode)."""
    code = serial_boot_code(MARKER)
    sector = code.ljust(510, b"\0") + b"\x55\xaa"
    return sector + bytes(size - 512)


def _wait(predicate, what: str, limit: float, logs: list[Path]):
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in logs if p.exists())
            raise AssertionError(f"{what} did not happen within {limit} s\n{tails}")
        time.sleep(0.5)


def test_x86_vm_installs_through_pinet_and_boots_its_disk(settings, tmp_path):
    need_program("dnsmasq", "dnsmasq-base")
    qemu = need_program("qemu-system-x86_64", "qemu-system-x86")
    need(
        Path("/usr/lib/ipxe/qemu/efi-virtio.rom").exists() or Path("/usr/share/qemu/efi-virtio.rom").exists(),
        "Debian's iPXE ROMs for QEMU are missing (apt-get install ipxe-qemu)",
    )
    need(any(Path("/boot").glob("vmlinuz-*")), "no kernel for the installer (apt-get install linux-image-amd64)")
    with netlab() as lab:
        data = lab.path("data")
        for d in (data, data / "images"):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)
        settings.PINET_CONFIG_ROOT, settings.PINET_TFTP_ROOT = data / "config", data / "tftp"
        settings.PINET_NFS_ROOT, settings.PINET_IMAGE_ROOT = data / "nfs", data / "images"
        settings.PINET_BOOT_URL_BASE = "http://192.0.2.1:8000"

        call_command("pinet_build_installer", "--out", str(data / "installer"), "--register", "pinet-installer")
        raw = marker_disk()
        image = installable_image(data, raw, name="marker-os", arch="amd64")
        site = Site.objects.create(
            name="Lab",
            slug="lab",
            interface=lab.server_if,
            subnet="192.0.2.0/24",
            boot_server="192.0.2.1",
            range_start="192.0.2.100",
            range_end="192.0.2.199",
        )
        node = make_node(site=site, n=20, mac=VM_MAC, board_model="x86-bios", state=NodeState.DEPLOYED)
        job = node_request_reinstall(node=node, image=image, by=None)
        start_dnsmasq(lab, site)
        start_web(lab, data)
        start_worker(lab, data, "site.lab,default")  # applies the configuration when the install ends

        # The VM's network: a TAP on a bridge with the client end of the lab's veth pair.
        for argv in (
            ["ip", "link", "add", "br0", "type", "bridge"],
            ["ip", "link", "set", lab.client_if, "master", "br0"],
            ["ip", "tuntap", "add", "pntap0", "mode", "tap"],
            ["ip", "link", "set", "pntap0", "master", "br0"],
            ["ip", "link", "set", "pntap0", "up"],
            ["ip", "link", "set", "br0", "up"],
        ):
            lab.run_in(lab.client_ns, argv, check=True)
        disk = lab.path("vm-disk.img")
        disk.write_bytes(bytes(16 << 20))
        serial = lab.path("serial.log")
        accel = os.environ.get("PINET_QEMU_ACCEL", "tcg")
        lab.start_daemon(
            lab.client_ns,
            [
                qemu,
                "-accel",
                accel,
                "-m",
                "512",
                "-display",
                "none",
                "-monitor",
                "none",
                "-serial",
                f"file:{serial}",
                "-netdev",
                "tap,id=n0,ifname=pntap0,script=no,downscript=no",
                "-device",
                f"virtio-net-pci,netdev=n0,mac={VM_MAC},bootindex=1",
                "-drive",
                f"file={disk},if=none,id=d0,format=raw",
                "-device",
                "virtio-blk-pci,drive=d0,bootindex=2",
            ],
            lab.path("qemu.log"),
        )
        logs = [serial, lab.path("gunicorn.log"), lab.path("worker.log"), lab.path("dnsmasq.log"), lab.path("qemu.log")]
        _wait(lambda: InstallJob.objects.get(pk=job.pk).status == InstallJobStatus.SUCCEEDED, "the install", 600, logs)
        _wait(lambda: MARKER in serial.read_bytes(), "booting from the installed disk", 300, logs)
        assert disk.read_bytes()[: len(raw)] == raw

    stages = list(JobEvent.objects.filter(job=job).values_list("stage", flat=True))
    assert "installer started" in stages and "writing" in stages and "written and verified" in stages
    node = Node.objects.get(pk=node.pk)
    assert (node.boot_mode, node.state) == (BootMode.LOCAL, NodeState.DEPLOYED)
