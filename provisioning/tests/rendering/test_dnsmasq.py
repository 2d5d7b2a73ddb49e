from dataclasses import replace

import pytest

from provisioning.rendering import ConfigRenderError, dnsmasq
from provisioning.rendering.snapshot import bundle_text

from .snapshots import DNS_SITE, PROXY_SITE, SITE, host


@pytest.mark.parametrize(
    ("snap", "name"), [(SITE, "dnsmasq-full"), (PROXY_SITE, "dnsmasq-proxy"), (DNS_SITE, "dnsmasq-dns")]
)
def test_golden(golden, snap, name):
    golden(f"{name}.txt", bundle_text(dnsmasq.render(snap)))


def test_same_snapshot_same_bytes_whatever_the_host_order():
    shuffled = replace(SITE, hosts=tuple(reversed(SITE.hosts)))
    assert dnsmasq.render(shuffled) == dnsmasq.render(SITE)


def test_node_changes_never_touch_the_main_file():
    more = replace(SITE, hosts=(*SITE.hosts, host(40), host(41, answer="netboot", boot_dir="/x", root_path="/y")))
    assert dnsmasq.render(more)["dnsmasq.conf"] == dnsmasq.render(SITE)["dnsmasq.conf"]


def test_answers_per_boot_mode():
    files = dnsmasq.render(SITE)
    assert files["hosts.d/dc-a6-32-00-00-01"] == "dc:a6:32:00:00:01,set:n1,192.0.2.11,pi-1,3600\n"
    assert "set:pxe-pi," in files["hosts.d/dc-a6-32-00-00-02"]
    assert "set:pxe-pi3b," in files["hosts.d/b8-27-eb-00-00-03"]
    assert "set:pxe-x86," in files["hosts.d/52-54-00-00-00-05"]
    assert (
        files["opts.d/dc-a6-32-00-00-04"] == 'tag:n4,224,"http://192.0.2.1:8000/boot/mac/dc-a6-32-00-00-04/?site=lab"\n'
    )
    assert "opts.d/dc-a6-32-00-00-02" not in files


def test_proxy_mode_stays_silent_for_local_nodes():
    files = dnsmasq.render(PROXY_SITE)
    assert "hosts.d/dc-a6-32-00-00-01" not in files
    assert files["hosts.d/dc-a6-32-00-00-02"] == "dc:a6:32:00:00:02,set:n2,set:pxe-pi,set:pinet-pxe\n"
    assert "dhcp-range=tag:pinet-pxe,192.0.2.0,proxy,255.255.255.0" in files["dnsmasq.conf"]


def test_validation_text_inlines_host_and_option_lines():
    text = dnsmasq.validation_text(dnsmasq.render(SITE))
    assert "dhcp-host=dc:a6:32:00:00:02,set:n2,set:pxe-pi,192.0.2.12,pi-2,3600" in text
    assert 'dhcp-option=tag:n4,224,"http://' in text


@pytest.mark.parametrize("url", ['http://x/"evil', "http://x/\nenable-tftp", "http://x/\\"])
def test_unsafe_text_is_refused(url):
    snap = replace(SITE, hosts=(replace(SITE.hosts[3], boot_url=url),))
    with pytest.raises(ConfigRenderError):
        dnsmasq.render(snap)


def test_pi3_reply_delay_can_be_switched_off():
    assert "dhcp-reply-delay" not in dnsmasq.render(DNS_SITE)["dnsmasq.conf"]
    assert "dhcp-reply-delay=tag:pi3,1" in dnsmasq.render(SITE)["dnsmasq.conf"]
