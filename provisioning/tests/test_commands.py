import pytest
from django.core.management import CommandError, call_command

from tests.factories import make_node
from tests.tools import need_program

pytestmark = pytest.mark.django_db


def test_render_writes_a_self_contained_tree(site, tmp_path, capsys):
    need_program("dnsmasq", "dnsmasq-base")
    make_node(site=site, n=1)
    call_command("pinet_render", "--site", "lab", "--out", str(tmp_path / "out"))
    conf = (tmp_path / "out" / "dnsmasq" / "dnsmasq.conf").read_text()
    for line in conf.splitlines():
        if line.startswith(("dhcp-leasefile=", "dhcp-hostsdir=", "dhcp-optsdir=", "tftp-root=", "pid-file=")):
            assert line.split("=", 1)[1].startswith(str(tmp_path / "out")), line
    assert (tmp_path / "out" / "dnsmasq" / "hosts.d" / "dc-a6-32-00-00-01").exists()
    assert "valid" in capsys.readouterr().out


def test_render_for_kea(site, tmp_path):
    need_program("kea-dhcp4", "kea-dhcp4-server")
    call_command("pinet_render", "--site", "lab", "--out", str(tmp_path), "--backend", "kea")
    assert str(tmp_path / "kea" / "kea4.sock") in (tmp_path / "kea" / "kea-dhcp4.json").read_text()


def test_unknown_site_is_a_clear_error(site):
    with pytest.raises(CommandError, match="There is no site 'nope' \\(sites: lab\\)"):
        call_command("pinet_apply", "--site", "nope")


def test_apply_prints_what_changed(site, settings, tmp_path, capsys):
    need_program("dnsmasq", "dnsmasq-base")
    settings.PINET_CONFIG_ROOT, settings.PINET_TFTP_ROOT = tmp_path / "c", tmp_path / "t"
    call_command("pinet_apply", "--site", "lab")
    out = capsys.readouterr().out
    assert "site lab (dnsmasq): applied" in out and "dnsmasq/dnsmasq.conf" in out and "revision" in out
