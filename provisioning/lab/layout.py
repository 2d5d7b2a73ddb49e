"""Names, addresses and files of pinet's lab (``pinet_lab``): one place for what the lab's
commands, its simulator configuration and its tests agree on."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from .netns import Proc

LAB_SLUG = "lab"
SUBNET = "203.0.113.0/24"
PREFIX_LEN = 24
SERVER_IP = "203.0.113.1"
# At the top of the subnet: adoption suggests addresses from the bottom up (ip_next_free).
PDU_IP = "203.0.113.254"
RANGE = ("203.0.113.100", "203.0.113.199")
WEB_PORT = 8080
PDU_PORT = 80
BRIDGE = "lab0"
BOOT_URL_BASE = f"http://{SERVER_IP}:{WEB_PORT}"
PDU_URL = f"http://{PDU_IP}" + ("" if PDU_PORT == 80 else f":{PDU_PORT}")
MAX_BOARDS = 60
SD_BYTES = 64 << 20
LEASE_SECONDS = 600
INSTALLER_NAME = "lab-pi-installer"
X86_INSTALLER_NAME = "lab-x86-installer"
VM_MAC = "52:54:00:1a:b0:01"
VM_DISK_BYTES = 64 << 20
IPXE_ROMS = (Path("/usr/lib/ipxe/qemu/efi-virtio.rom"), Path("/usr/share/qemu/efi-virtio.rom"))
READY_TIMEOUT_S = 60.0
# What pinet-agent.sh runs, from busybox (as in pinet's initramfs); zstd comes from the host.
# Deliberately no reboot, mount or blockdev: the agent runs on this host, with a file for a card.
APPLETS = "sh wget udhcpc ip sha256sum tee mkfifo cut tr sed cat rm sync printf echo grep mkdir sleep chmod".split()
# The webhook driver's settings for a lab board: the same for every board ({mac} is filled in).
POWER_PARAMS = {
    "on": {"url": f"{PDU_URL}/outlets/{{mac}}/on"},
    "off": {"url": f"{PDU_URL}/outlets/{{mac}}/off"},
    "cycle": {"url": f"{PDU_URL}/outlets/{{mac}}/cycle"},
    "status": {"url": f"{PDU_URL}/outlets/{{mac}}"},
    "status_json_path": "power",
}


class LabError(Exception):
    """Something the operator can fix; the message says what."""


def board_mac(k: int) -> str:
    return f"dc:a6:32:1a:b0:{k:02x}"


def board_serial(k: int) -> str:
    return f"1ab0{k:04x}"


@dataclass(frozen=True)
class Layout:
    """Where this data dir's lab lives: files under ``$PINET_DATA_DIR/lab``, namespace names."""

    data_dir: Path

    @property
    def root(self) -> Path:
        return self.data_dir / "lab"

    @property
    def state_file(self) -> Path:
        return self.root / "lab.json"

    @property
    def boards_file(self) -> Path:
        return self.root / "boards.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def tag(self) -> str:
        return hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:6]

    @property
    def prefix(self) -> str:
        return f"pinetlab-{self.tag}"

    @property
    def server_ns(self) -> str:
        return f"{self.prefix}-srv"

    @property
    def boards_ns(self) -> str:
        return f"{self.prefix}-boards"

    def board_ns(self, k: int) -> str:
        return f"{self.prefix}-b{k}"

    def board_dir(self, k: int) -> Path:
        return self.root / "boards" / board_mac(k).replace(":", "-")


def layout() -> Layout:
    return Layout(Path(settings.PINET_DATA_DIR))


def read_state(lay: Layout) -> dict | None:
    try:
        return json.loads(lay.state_file.read_text())
    except (OSError, ValueError):
        return None


def write_state(lay: Layout, state: dict) -> None:
    lay.root.mkdir(parents=True, exist_ok=True)
    tmp = lay.state_file.with_name("lab.json.tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, lay.state_file)


def procs(state: dict) -> list[Proc]:
    return [Proc(**p) for p in state.get("processes", [])]
