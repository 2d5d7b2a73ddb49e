from dataclasses import replace

import pytest

from provisioning.rendering import ConfigRenderError, nfs, tftp

from .snapshots import IMAGE_BOOT, INSTALLER_BOOT, SITE

BOOT = (
    ("bcm2711-rpi-4-b.dtb", "cmdline.txt", "config.txt", "fixup4.dat", "kernel8.img", "start4.elf"),
    "console=serial0,115200 console=tty1 root=PARTUUID=deadbeef-02 rootfstype=ext4 fsck.repair=yes rootwait "
    "init=/usr/lib/raspberrypi-sys-mods/firstboot",
    "arm_64bit=1\n",
)


def test_exports_golden(golden):
    golden("exports.txt", nfs.render(SITE)["pinet-lab.exports"])


def test_exports_refuse_unsafe_paths():
    bad = replace(SITE, hosts=(replace(SITE.hosts[1], data_path="/srv/x y"),))
    with pytest.raises(ConfigRenderError):
        nfs.render(bad)


def test_nfs_cmdline_replaces_the_sd_root():
    line = tftp.nfs_cmdline(BOOT[1], SITE.hosts[1], SITE)
    assert line == (
        "console=serial0,115200 console=tty1 root=/dev/nfs "
        "nfsroot=192.0.2.1:/srv/pinet/nfs/images/raspios-lite/3/root,vers=3,tcp ro ip=dhcp rootwait "
        "pinet.data=192.0.2.1:/srv/pinet/nfs/nodes/lab/pi-2"
    )


def test_plan_gives_each_network_booting_pi_a_directory():
    plan = tftp.plan(SITE, {IMAGE_BOOT: BOOT, INSTALLER_BOOT: BOOT})
    assert set(plan) == {"dc:a6:32:00:00:02", "b8:27:eb:00:00:03", "dc:a6:32:00:00:04", "d8:3a:dd:00:00:08"}
    entry = plan["dc:a6:32:00:00:02"]
    assert entry.aliases == ("dc-a6-32-00-00-02", "9ffe0002")
    links = dict(entry.links)
    assert links["start4.elf"] == f"{IMAGE_BOOT}/start4.elf" and links["9ffe0002"] == "."
    assert "cmdline.txt" not in links and dict(entry.files)["cmdline.txt"].startswith("console=serial0")
    assert (
        "pinet.url=http://192.0.2.1:8000/boot/mac/dc-a6-32-00-00-04/?site=lab"
        in dict(plan["dc:a6:32:00:00:04"].files)["cmdline.txt"]
    )


def test_shared_serial_prefix_is_not_used():
    twins = replace(
        SITE, hosts=(replace(SITE.hosts[1], serial8="c5000001"), replace(SITE.hosts[7], serial8="c5000001"))
    )
    plan = tftp.plan(twins, {IMAGE_BOOT: BOOT})
    assert len(plan) == 2 and all(entry.aliases == (entry.name.rsplit("-", 1)[0],) for entry in plan.values())


def test_directory_name_changes_with_content():
    a = tftp.plan(SITE, {IMAGE_BOOT: BOOT})["dc:a6:32:00:00:02"].name
    other = replace(SITE, nfs_server=SITE.boot_server + 1)
    assert tftp.plan(other, {IMAGE_BOOT: BOOT})["dc:a6:32:00:00:02"].name != a
    assert tftp.plan(SITE, {IMAGE_BOOT: BOOT})["dc:a6:32:00:00:02"].name == a
