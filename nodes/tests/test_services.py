"""Services reject bad input with a message that names the field and says what to fix."""

import pytest
from django.core.exceptions import ValidationError

from nodes.models import AuditLog, Node
from nodes.services import node_create, node_update, site_create, site_update
from tests.factories import make_node

pytestmark = pytest.mark.django_db


def _errors(call) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        call()
    return info.value.message_dict


def _create(site, **fields):
    return node_create(by=None, **{"site": site, "hostname": "pi-new", "mac": "dc:a6:32:aa:bb:cc", **fields})


def test_node_create_normalises_and_audits(site, operator):
    node = node_create(
        by=operator, site=site, hostname="Rack1-Pi4", mac="DC-A6-32-AA-BB-CC", serial="0X9FFEFDEF", ip="192.0.2.20"
    )
    node.refresh_from_db()
    assert (node.hostname, node.mac, node.serial) == ("rack1-pi4", "dc:a6:32:aa:bb:cc", "9ffefdef")
    entry = AuditLog.objects.get(action="node.create")
    assert entry.actor == operator and entry.object_id == str(node.pk) and entry.data["mac"] == node.mac


def test_duplicate_mac_message(site):
    make_node(site=site, n=1, mac="dc:a6:32:aa:bb:cc")
    assert _errors(lambda: _create(site, mac="DC:A6:32:AA:BB:CC"))["mac"] == [
        "Another node already has this MAC address."
    ]


def test_bad_mac_message(site):
    assert "is not a MAC address" in _errors(lambda: _create(site, mac="not-a-mac"))["mac"][0]


def test_duplicate_ip_message(site):
    make_node(site=site, n=1, ip="192.0.2.20")
    assert "already has that reserved address" in str(_errors(lambda: _create(site, ip="192.0.2.20")))


def test_ip_outside_subnet_message(site):
    assert _errors(lambda: _create(site, ip="198.51.100.20"))["ip"] == [
        "198.51.100.20 is outside the site subnet 192.0.2.0/24."
    ]


def test_ip_inside_range_message(site):
    assert (
        "inside the dynamic range 192.0.2.100-192.0.2.199" in _errors(lambda: _create(site, ip="192.0.2.150"))["ip"][0]
    )


def test_ip_of_boot_server_is_refused(site):
    assert "boot server" in _errors(lambda: _create(site, ip="192.0.2.1"))["ip"][0]


def test_bad_hostname_message(site):
    assert "RFC 1123" in _errors(lambda: _create(site, hostname="pi_4"))["hostname"][0]


def test_bad_serial_message(site):
    assert "8 or 16 hex digits" in _errors(lambda: _create(site, serial="xyz"))["serial"][0]


def test_unknown_field_is_refused(site):
    node = make_node(site=site, n=1)
    with pytest.raises(ValidationError, match="cannot be changed here: state"):
        node_update(node=node, by=None, state="deployed")


def test_nothing_is_written_when_validation_fails(site):
    with pytest.raises(ValidationError):
        _create(site, ip="198.51.100.20")
    assert not Node.objects.exists() and not AuditLog.objects.exists()


def test_site_validation_messages():
    errors = _errors(
        lambda: site_create(
            by=None,
            name="X",
            slug="x",
            interface="eth0",
            subnet="192.0.2.0/24",
            boot_server="192.0.2.150",
            range_start="192.0.2.100",
            range_end="192.0.2.50",
            dns_servers="192.0.2.1, nope",
        )
    )
    assert errors["range_end"] == ["The range must end after it starts."]
    assert "nope is not an IPv4 address" in errors["dns_servers"][0]
    errors = _errors(
        lambda: site_create(
            by=None,
            name="X",
            slug="x",
            interface="eth 0",
            subnet="192.0.2.1/24",
            boot_server="192.0.2.1",
        )
    )
    assert "not an IPv4 subnet in CIDR form" in errors["subnet"][0]
    assert "not a network interface name" in errors["interface"][0]


def test_site_update_refuses_to_strand_nodes(site):
    make_node(site=site, n=1, ip="192.0.2.10")
    errors = _errors(lambda: site_update(site=site, by=None, range_start="192.0.2.2", range_end="192.0.2.50"))
    assert "pi-1" in errors["subnet"][0]
    site.refresh_from_db()
    assert site.range_start == "192.0.2.100"


def test_site_update_audits_changes(site, operator):
    site_update(site=site, by=operator, discovery_enabled=True)
    entry = AuditLog.objects.get(action="site.update")
    assert entry.data == {"discovery_enabled": [False, True]} and entry.actor_label == "alice"


def test_stale_copy_does_not_undo_other_changes(site):
    from nodes.services import node_set_boot_mode

    node = make_node(site=site, n=1)
    stale = Node.objects.get(pk=node.pk)
    node_set_boot_mode(node=node, mode="netboot", by=None)
    node_update(node=stale, by=None, power_params={"port": 7})
    fresh = Node.objects.get(pk=node.pk)
    assert fresh.boot_mode == "netboot" and fresh.power_params == {"port": 7}


def test_boot_mode_switch_rules(site):
    from nodes.services import node_set_boot_mode

    node = make_node(site=site, n=1)
    with pytest.raises(ValidationError, match="comes with a reinstall"):
        node_set_boot_mode(node=node, mode="install", by=None)
    with pytest.raises(ValidationError, match="is not a boot mode"):
        node_set_boot_mode(node=node, mode="usb", by=None)
    Node.objects.filter(pk=node.pk).update(state="suspended")
    with pytest.raises(ValidationError, match="is suspended"):
        node_set_boot_mode(node=node, mode="netboot", by=None)


def test_site_slug_is_fixed(site):
    with pytest.raises(ValidationError, match="cannot be changed here: slug"):
        site_update(site=site, by=None, slug="other")


def test_malformed_addresses_are_field_errors_not_crashes(site):
    assert "gateway" in _errors(
        lambda: site_create(
            by=None,
            name="X",
            slug="x",
            interface="eth0",
            subnet="192.0.2.0/24",
            boot_server="192.0.2.1",
            gateway="nope",
        )
    )
    assert "ip" in _errors(lambda: _create(site, ip="nope"))


def test_kea_site_refuses_a_shared_circuit_id(site):
    site_update(site=site, by=None, dhcp_backend="kea")
    make_node(site=site, n=1, relay_remote_id="switch-a", relay_circuit_id="ge-0/0/7")
    errors = _errors(lambda: _create(site, relay_remote_id="switch-b", relay_circuit_id="ge-0/0/7"))
    assert "Kea cannot tell switches apart" in errors["relay_circuit_id"][0]


def test_site_boot_url_base_is_an_http_url_without_trailing_slash(site, operator):
    site_update(site=site, by=operator, boot_url_base=" http://203.0.113.1:8080/ ")
    site.refresh_from_db()
    assert site.boot_url_base == "http://203.0.113.1:8080"
    assert AuditLog.objects.filter(action="site.update", data__boot_url_base__isnull=False).exists()
    for bad in ("ftp://x", "http://", "https://pinet.example/?x=1", "pinet.example"):
        assert "boot_url_base" in _errors(lambda bad=bad: site_update(site=site, by=None, boot_url_base=bad))
    site_update(site=site, by=None, boot_url_base="")
    site.refresh_from_db()
    assert site.boot_url_base == ""


def test_site_boot_url_base_falls_back_to_the_setting(site, settings):
    settings.PINET_BOOT_URL_BASE = "https://pinet.example"
    assert site.effective_boot_url_base == "https://pinet.example"
    site_update(site=site, by=None, boot_url_base="http://203.0.113.1:8080")
    assert site.effective_boot_url_base == "http://203.0.113.1:8080"


def test_the_database_refuses_a_malformed_boot_url_base(site):
    from django.db import IntegrityError, transaction

    from nodes.models import Site

    with pytest.raises(IntegrityError), transaction.atomic():
        Site.objects.filter(pk=site.pk).update(boot_url_base="http://x/")
