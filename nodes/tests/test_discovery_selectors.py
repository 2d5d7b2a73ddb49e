from __future__ import annotations

import pytest

from nodes import selectors
from nodes.apikeys import ApiPrincipal, api_key_create
from nodes.discovery_services import discovered_board_ignore, discovery_record
from nodes.models import DiscoveredBoard, Node
from tests.factories import make_node, make_site

from .test_discovery_services import pc, pi4

pytestmark = pytest.mark.django_db


def test_only_operators_list_discovered_boards(site, operator, customer):
    board = discovery_record(site=site, sighting=pc())
    assert list(selectors.discovered_board_list(user=operator)) == [board]
    assert list(selectors.discovered_board_list(user=customer)) == []
    assert selectors.discovered_board_get(user=operator, pk=board.pk) == board
    with pytest.raises(DiscoveredBoard.DoesNotExist):
        selectors.discovered_board_get(user=customer, pk=board.pk)
    _, billing = api_key_create(name="billing", scope="billing")
    principal = ApiPrincipal(key=billing, scope="billing", tenant_ids=[])
    assert list(selectors.discovered_board_list(user=principal)) == []


def test_hostname_suggestions(site):
    pi = discovery_record(site=site, sighting=pi4())
    assert selectors.hostname_suggest(board=pi) == "pi4-9ffefdef"
    make_node(site=site, n=1, hostname="pi4-9ffefdef", mac="dc:a6:32:99:99:99", serial=None)
    make_node(site=site, n=2, hostname="pi4-9ffefdef-2", mac="dc:a6:32:99:99:98", serial=None)
    assert selectors.hostname_suggest(board=pi) == "pi4-9ffefdef-3"
    box = discovery_record(site=site, sighting=pc(mac="52:54:00:0a:1b:2c"))
    assert selectors.hostname_suggest(board=box) == "pc-0a1b2c"
    cm4 = discovery_record(site=site, sighting=pi4(mac="e4:5f:01:00:00:01", serial="1000abcd", board_model="cm4"))
    assert selectors.hostname_suggest(board=cm4) == "cm4-1000abcd"
    odd = discovery_record(site=site, sighting=pc(mac="52:54:00:00:00:0f", board_model="unknown", arch=10))
    assert selectors.hostname_suggest(board=odd) == "board-00000f"


def test_a_suggested_name_in_another_site_is_still_free(site):
    other = make_site(name="Other", slug="other", subnet="198.51.100.0/24", boot_server="198.51.100.1",
                      range_start=None, range_end=None)  # fmt: skip
    make_node(site=other, n=1, hostname="pi4-9ffefdef", ip=None, serial=None)
    assert selectors.hostname_suggest(board=discovery_record(site=site, sighting=pi4())) == "pi4-9ffefdef"


def test_next_free_address_skips_what_is_taken(site):
    # site: 192.0.2.0/24, boot server .1, dynamic range .100-.199
    site.gateway, site.dns_servers = "192.0.2.2", "192.0.2.3"
    site.save()
    assert selectors.ip_next_free(site=site) == "192.0.2.4"
    make_node(site=site, n=1, ip="192.0.2.4")
    make_node(site=site, n=2, ip="192.0.2.5")
    assert selectors.ip_next_free(site=site) == "192.0.2.6"


def test_next_free_address_jumps_the_dynamic_range_and_may_run_out(db):
    small = make_site(subnet="203.0.113.0/29", boot_server="203.0.113.1", range_start="203.0.113.2",
                      range_end="203.0.113.5")  # fmt: skip
    assert selectors.ip_next_free(site=small) == "203.0.113.6"
    make_node(site=small, n=1, ip="203.0.113.6")
    assert selectors.ip_next_free(site=small) is None  # .7 is the broadcast address


def test_next_free_address_is_accepted_by_node_validation(site):
    address = selectors.ip_next_free(site=site)
    Node(site=site, hostname="x", mac="52:54:00:00:00:01", ip=address).full_clean()


def test_overview_counts_new_boards_per_site(site, operator):
    discovery_record(site=site, sighting=pc(mac="52:54:00:00:00:01"))
    ignored = discovery_record(site=site, sighting=pc(mac="52:54:00:00:00:02"))
    discovered_board_ignore(board=ignored, by=None)
    discovery_record(site=site, sighting=pc(mac="52:54:00:00:00:03"))
    row = selectors.operator_overview(user=operator)["sites"][0]
    assert row["site"] == site and row["discovered"] == 2
