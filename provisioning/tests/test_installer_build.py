import gzip
import subprocess
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from images.models import OSImage
from tests.tools import need_program

pytestmark = pytest.mark.django_db


def _listing(initrd: Path) -> list[str]:
    busybox = need_program("busybox", "busybox-static")
    data = gzip.decompress(initrd.read_bytes())
    out = subprocess.run([busybox, "cpio", "-t"], input=data, capture_output=True, check=True).stdout.decode()
    return out.split()


def test_pi_installer_from_an_imported_image(tmp_path):
    boot, root = tmp_path / "img" / "boot", tmp_path / "img" / "root"
    (boot / "overlays").mkdir(parents=True)
    for name in ("start4.elf", "fixup4.dat", "kernel8.img", "bcm2711-rpi-4-b.dtb", "overlays/README", "config.txt"):
        (boot / name).write_bytes(b"x")
    modules = root / "lib" / "modules" / "6.6.51-v8+"
    (modules / "kernel" / "drivers" / "net").mkdir(parents=True)
    (modules / "kernel" / "drivers" / "net" / "r8169.ko").write_bytes(b"\x7fELF module")
    (modules / "modules.dep").write_text("kernel/drivers/net/r8169.ko:\n")
    OSImage.objects.create(
        name="raspios", arch="arm64", source="/x", state="ready", boot_path=str(boot), root_path=str(root)
    )
    out = tmp_path / "installer"
    call_command(
        "pinet_build_installer",
        "--arch",
        "arm64",
        "--from-image",
        "raspios",
        "--out",
        str(out),
        "--register",
        "pinet-installer-pi",
    )
    assert (out / "start4.elf").exists() and (out / "overlays" / "README").exists()
    assert "initramfs initrd.img followkernel" in (out / "config.txt").read_text()
    listing = _listing(out / "initrd.img")
    assert {"init", "bin/busybox", "pinet-agent.sh", "usr/bin/zstd", "lib/modules/kernel/drivers/net/r8169.ko"} <= set(
        listing
    )
    installer = OSImage.objects.get(name="pinet-installer-pi")
    assert (installer.kind, installer.state, installer.boot_path) == ("installer", "ready", str(out))


def test_missing_source_image_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="No ready imported OS image called 'nope'"):
        call_command("pinet_build_installer", "--arch", "arm64", "--from-image", "nope", "--out", str(tmp_path))
