"""Real small images through the real tools: faithful trees, diskless fix-ups, every failure."""

from __future__ import annotations

import http.server
import os
import socket
import stat
import subprocess
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command

from images import importer
from images.choices import ImageState
from images.models import OSImage
from images.services import image_create, image_import_cancel, image_import_run

from .imagebuilder import build_image, compress, require_tools, sha256

pytestmark = pytest.mark.django_db


@pytest.fixture
def stores(settings, tmp_path):
    require_tools()
    settings.PINET_IMAGE_ROOT = tmp_path / "images"
    settings.PINET_NFS_ROOT = tmp_path / "nfs"
    settings.PINET_IMPORT_RESERVE_BYTES = 0
    for d in (settings.PINET_IMAGE_ROOT, settings.PINET_NFS_ROOT):
        d.mkdir()
    return tmp_path


@pytest.fixture
def disk(stores):
    src = stores / "src"
    src.mkdir()
    return build_image(src)


def _import(source, **fields) -> OSImage:
    image = image_create(by=None, name=fields.pop("name", "raspios"), arch="arm64", source=str(source), **fields)
    return image_import_run(image_id=image.pk)


def _leftovers(stores: Path) -> list[str]:
    return [str(p) for d in ("images/.staging", "nfs/.staging") for p in (stores / d).glob("*")]


def test_xz_image_becomes_a_faithful_nfs_root(stores, disk):
    source = compress(disk, "img.xz")
    image = _import(source, sha256=sha256(source))
    assert image.state == ImageState.READY, image.error
    root, boot = Path(image.root_path), Path(image.boot_path)
    assert root == stores / "nfs" / "images" / "raspios" / "1" / "root"
    # What debugfs rdump loses, restored (netboot.md §7).
    assert stat.S_IMODE((root / "usr/bin/sudo").stat().st_mode) == 0o4755
    wall = (root / "usr/bin/wall").stat()
    assert stat.S_IMODE(wall.st_mode) == 0o2755 and wall.st_gid == 5
    assert (root / "usr/bin/python3.11").stat().st_ino == (root / "usr/bin/python3-hardlink").stat().st_ino
    assert os.readlink(root / "usr/bin/python3") == "python3.11"
    null = (root / "dev/null").lstat()
    assert stat.S_ISCHR(null.st_mode) and (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_ISFIFO((root / "dev/initctl").lstat().st_mode)
    home = (root / "home/pi").stat()
    assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode)) == (1000, 1000, 0o2750)
    # Boot files, and the diskless fix-ups.
    assert (boot / "start4.elf").stat().st_size > 100_000 and (boot / "overlays" / "README").exists()
    cmdline = (boot / "cmdline.txt").read_text()
    assert "root=/dev/nfs" in cmdline and "init=" not in cmdline and "PARTUUID" not in cmdline
    fstab = (root / "etc/fstab").read_text()
    assert "PARTUUID" not in fstab and "proc" in fstab and "tmpfs /var/log tmpfs" in fstab
    assert not (root / "etc/init.d/resize2fs_once").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/regenerate_ssh_host_keys.service").is_symlink()
    # The install artefact decompresses to the very image that was imported.
    artefact = Path(image.artefact_path)
    assert sha256(artefact) == image.artefact_sha256 and artefact.stat().st_size == image.artefact_size
    out = stores / "roundtrip.img"
    subprocess.run(["zstd", "-q", "-d", str(artefact), "-o", str(out)], check=True)
    assert sha256(out) == sha256(disk) and image.image_size == disk.stat().st_size
    assert image.format == "img.xz" and image.percent == 100 and _leftovers(stores) == []


@pytest.mark.parametrize("fmt", ["img", "img.gz", "img.zst", "zip"])
def test_other_formats(stores, disk, fmt):
    image = _import(compress(disk, fmt))
    assert image.state == ImageState.READY, image.error
    assert image.format == fmt and (Path(image.root_path) / "etc/hostname").read_text() == "raspberrypi\n"


def test_gpt_image(stores):
    src = stores / "src"
    src.mkdir()
    image = _import(build_image(src, label="gpt"))
    assert image.state == ImageState.READY, image.error
    assert Path(image.boot_path, "start4.elf").exists() and Path(image.root_path, "etc/hostname").exists()


def test_reimport_makes_a_new_version_and_keeps_the_old(stores, disk):
    first = _import(disk)
    second = _import(disk)
    assert (first.version, second.version) == (1, 2)
    assert first.root_path != second.root_path and Path(first.root_path).is_dir()


def test_download_over_http(stores, disk):
    source = compress(disk, "img.xz")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(source.parent), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{source.name}"
        image = _import(url, sha256=sha256(source))
    finally:
        server.shutdown()
    assert image.state == ImageState.READY, image.error
    assert image.source_size == source.stat().st_size


# --- failures: each ends failed, with a reason, nothing left behind ---------------------------


def _failed(image: OSImage, stores: Path, reason: str) -> None:
    assert image.state == ImageState.FAILED, image.state
    assert reason in image.error, image.error
    assert _leftovers(stores) == []
    assert not (stores / "nfs" / "images" / image.name / str(image.version)).exists()


def test_wrong_checksum(stores, disk):
    _failed(_import(disk, sha256="0" * 64), stores, "Checksum mismatch")


def test_truncated_xz(stores, disk):
    source = compress(disk, "img.xz")
    data = source.read_bytes()
    source.write_bytes(data[: len(data) // 2])
    _failed(_import(source), stores, "Decompressing the img.xz source failed")


def test_no_partition_table(stores):
    junk = stores / "junk.img"
    junk.write_bytes(b"\x00" * 510 + b"\x55\xaa" + b"\x00" * 4096)
    _failed(_import(junk), stores, "no partition table")


def test_not_a_disk_image(stores):
    text = stores / "notes.txt"
    text.write_text("hello")
    _failed(_import(text), stores, "not a disk image")


@pytest.mark.parametrize(("missing", "reason"), [("boot", "no FAT boot partition"), ("root", "no Linux (ext4) root")])
def test_missing_partition(stores, missing, reason):
    src = stores / "src"
    src.mkdir()
    image = build_image(src, with_boot=missing != "boot", with_root=missing != "root")
    _failed(_import(image), stores, reason)


@pytest.mark.parametrize("count", [0, 2])
def test_zip_must_hold_exactly_one_image(stores, disk, count):
    archive = stores / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("README.txt", "hi")
        for i in range(count):
            zf.write(disk, f"image-{i}.img")
    _failed(_import(archive), stores, "exactly one .img")


def test_uncompressed_size_limit(stores, disk, settings):
    settings.PINET_IMPORT_MAX_BYTES = 2**20
    _failed(_import(compress(disk, "img.zst")), stores, "PINET_IMPORT_MAX_BYTES")


def test_not_enough_free_space_is_checked_first(stores, disk, settings):
    settings.PINET_IMPORT_RESERVE_BYTES = 2**60
    _failed(_import(compress(disk, "img.xz")), stores, "Not enough free space")


def test_unreachable_url(stores):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    _failed(_import(f"http://127.0.0.1:{port}/raspios.img.xz"), stores, "Cannot download")


def test_missing_server_path(stores):
    _failed(_import("/nonexistent/raspios.img"), stores, "is not a file on this server")


def test_cancel_stops_a_running_import(stores, disk, monkeypatch):
    image = image_create(by=None, name="raspios", arch="arm64", source=str(compress(disk, "img.xz")))
    original = importer.extract_root

    def cancel_then_extract(*args, **kwargs):
        image_import_cancel(image=OSImage.objects.get(pk=image.pk), by=None)
        return original(*args, **kwargs)

    monkeypatch.setattr(importer, "extract_root", cancel_then_extract)
    result = image_import_run(image_id=image.pk)
    _failed(result, stores, "Cancelled by system")


def test_earlier_versions_survive_a_failed_reimport(stores, disk):
    good = _import(disk)
    _import(disk, sha256="1" * 64)
    assert Path(good.root_path, "etc/hostname").exists() and OSImage.objects.get(pk=good.pk).state == "ready"


# --- tarballs -----------------------------------------------------------------------------------


def _tarball(stores: Path, extra) -> Path:
    boot, root = stores / "t" / "boot", stores / "t" / "root"
    (boot).mkdir(parents=True)
    (root / "etc").mkdir(parents=True)
    (boot / "cmdline.txt").write_text("console=tty1 root=/dev/mmcblk0p2 rootwait\n")
    (root / "etc" / "fstab").write_text("proc /proc proc defaults 0 0\n/dev/mmcblk0p2 / ext4 defaults 0 1\n")
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    path = stores / "os.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(boot, "boot")
        tar.add(root, "root")
        extra(tar)
    return path


def test_boot_and_root_tarball(stores):
    image = _import(_tarball(stores, lambda tar: None))
    assert image.state == ImageState.READY, image.error
    assert "mmcblk" not in Path(image.root_path, "etc/fstab").read_text()
    assert Path(image.boot_path, "cmdline.txt").read_text().startswith("console=tty1 root=/dev/nfs")


@pytest.mark.parametrize(
    ("name", "link", "reason"),
    [
        ("/etc/evil", None, "unsafe path"),
        ("root/../../evil", None, "unsafe path"),
        ("root/etc/escape", "../../../../outside", "leaves the tree"),
    ],
)
def test_tarball_escapes_are_refused(stores, name, link, reason):
    def extra(tar):
        info = tarfile.TarInfo(name)
        if link:
            info.type, info.linkname = tarfile.SYMTYPE, link
        tar.addfile(info)

    _failed(_import(_tarball(stores, extra)), stores, reason)
    assert not (stores / "evil").exists() and not Path("/etc/evil").exists()


# --- command ------------------------------------------------------------------------------------


def test_import_command_shows_progress_and_fails_clearly(stores, disk, capsys):
    call_command("pinet_import_image", "raspios", str(compress(disk, "img.zst")), "--arch", "arm64")
    out = capsys.readouterr().out
    assert "ready" in out and OSImage.objects.get(name="raspios").state == "ready"
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="Checksum mismatch"):
        call_command("pinet_import_image", "raspios", str(disk), "--sha256", "2" * 64)


def test_upload_is_streamed_to_the_store_and_imported(stores, disk, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from images.services import image_create_from_upload

    upload = SimpleUploadedFile("2026-raspios.img.zst", compress(disk, "img.zst").read_bytes())
    with django_capture_on_commit_callbacks() as callbacks:
        image = image_create_from_upload(by=None, name="raspios", arch="arm64", upload=upload)
    assert len(callbacks) == 1 and Path(image.source).parent == stores / "images" / ".uploads"
    image = image_import_run(image_id=image.pk)
    assert image.state == ImageState.READY, image.error
    assert not Path(image.source).exists()  # the upload copy goes once the trees exist
