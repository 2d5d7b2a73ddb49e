"""The rules hold in the database itself: a write that skips forms and services still fails."""

import pytest
from django.db import DataError, IntegrityError, transaction

from nodes.models import Node, Site
from tests.factories import make_node, make_site

pytestmark = pytest.mark.django_db


def _rejected(write, rule: str | None = None) -> None:
    with pytest.raises(IntegrityError, match=rule), transaction.atomic():
        write()


def test_duplicate_mac_is_rejected_in_any_spelling(site):
    make_node(site=site, n=1, mac="dc:a6:32:00:00:01")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_node(site=site, n=2, mac="DC-A6-32-00-00-01")


def test_mac_is_stored_normalised(site):
    node = make_node(site=site, n=1, mac="DCA6.3200.0001")
    assert Node.objects.get(pk=node.pk).mac == "dc:a6:32:00:00:01"
    assert Node.objects.filter(mac="DC:A6:32:00:00:01").exists()


def test_malformed_mac_is_rejected(site):
    _rejected(lambda: make_node(site=site, n=1, mac="dc:a6:32:00:00"), "nodes_node_mac_format")


def test_duplicate_ip_in_one_site_is_rejected(site):
    make_node(site=site, n=1, ip="192.0.2.10")
    _rejected(lambda: make_node(site=site, n=2, ip="192.0.2.10"))


def test_same_ip_in_another_site_is_allowed(site):
    other = make_site(name="Other", slug="other")
    make_node(site=site, n=1, ip="192.0.2.10")
    make_node(site=other, n=2, ip="192.0.2.10")


def test_ip_outside_subnet_is_rejected(site):
    _rejected(lambda: make_node(site=site, n=1, ip="198.51.100.7"), "nodes_node_ip_in_subnet")


def test_ip_inside_dynamic_range_is_rejected(site):
    _rejected(lambda: make_node(site=site, n=1, ip="192.0.2.150"), "nodes_node_ip_outside_dynamic_range")


def test_moving_a_node_into_the_range_by_update_is_rejected(site):
    node = make_node(site=site, n=1, ip="192.0.2.10")
    _rejected(lambda: Node.objects.filter(pk=node.pk).update(ip="192.0.2.100"), "nodes_node_ip_outside_dynamic_range")


def test_site_change_that_strands_a_node_is_rejected(site):
    make_node(site=site, n=1, ip="192.0.2.10")
    _rejected(
        lambda: Site.objects.filter(pk=site.pk).update(range_start="192.0.2.5", range_end="192.0.2.20"),
        "nodes_site_keeps_node_addresses",
    )
    _rejected(
        lambda: Site.objects.filter(pk=site.pk).update(subnet="203.0.113.0/24", range_start=None, range_end=None),
        "nodes_site_keeps_node_addresses",
    )


def test_site_range_outside_subnet_is_rejected():
    _rejected(lambda: make_site(range_start="198.51.100.1", range_end="198.51.100.9"), "nodes_site_range_in_subnet")


def test_site_subnet_with_host_bits_is_rejected():
    _rejected(lambda: make_site(subnet="192.0.2.1/24", range_start=None, range_end=None), "nodes_site_subnet_valid")


@pytest.mark.parametrize("hostname", ["bad_name", "-pi", "pi-", "pi.example", ""])
def test_bad_hostname_is_rejected(site, hostname):
    _rejected(
        lambda: Node.objects.create(site=site, hostname=hostname, mac="dc:a6:32:00:00:09"),
        "nodes_node_hostname_format",
    )


def test_overlong_hostname_is_rejected(site):
    # PostgreSQL refuses it by column length (DataError), SQLite by the format check.
    with pytest.raises((DataError, IntegrityError)), transaction.atomic():
        Node.objects.create(site=site, hostname="a" * 64, mac="dc:a6:32:00:00:09")


def test_duplicate_hostname_in_one_site_is_rejected(site):
    make_node(site=site, n=1, hostname="pi")
    _rejected(lambda: make_node(site=site, n=2, hostname="pi"))


@pytest.mark.parametrize("serial", ["xyz", "1234567", "123456789", "0x9ffefdef0"])
def test_bad_serial_is_rejected(site, serial):
    _rejected(lambda: make_node(site=site, n=1, serial=serial), "nodes_node_serial_format")


def test_serial_is_normalised_and_unique(site):
    node = make_node(site=site, n=1, serial="0x9FFEFDEF")
    assert Node.objects.get(pk=node.pk).serial == "9ffefdef"
    _rejected(lambda: make_node(site=site, n=2, serial="9ffefdef"))


def test_nodes_without_serial_do_not_collide(site):
    make_node(site=site, n=1, serial="")
    make_node(site=site, n=2, serial=None)
    assert Node.objects.filter(serial__isnull=True).count() == 2


def test_unknown_choice_values_are_rejected(site):
    _rejected(lambda: make_node(site=site, n=1, boot_mode="pxe"), "nodes_node_boot_mode_valid")
    _rejected(lambda: make_node(site=site, n=2, state="lost"), "nodes_node_state_valid")
    _rejected(lambda: make_node(site=site, n=3, board_model="pi9"), "nodes_node_board_model_valid")


def test_switch_port_is_unique_per_site(site):
    make_node(site=site, n=1, relay_remote_id="switch-a", relay_circuit_id="ge-0/0/7")
    _rejected(lambda: make_node(site=site, n=2, relay_remote_id="switch-a", relay_circuit_id="ge-0/0/7"))
    make_node(site=site, n=3, relay_remote_id="switch-b", relay_circuit_id="ge-0/0/7")


def test_tftp_identifiers(site):
    node = make_node(site=site, n=1, mac="dc:a6:32:01:36:c2", serial="100000009ffefdef")
    assert node.mac_dashed == "dc-a6-32-01-36-c2"
    assert Node.objects.get(pk=node.pk).tftp_serial_prefix == "9ffefdef"
