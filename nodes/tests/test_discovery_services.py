from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from nodes.choices import DISCOVERY_TRANSITIONS, DiscoveryStatus
from nodes.discovery import Sighting
from nodes.discovery_services import (
    DiscoveryFull,
    discovered_board_adopt,
    discovered_board_ignore,
    discovered_board_unignore,
    discovery_record,
)
from nodes.models import AuditLog, DiscoveredBoard, Node, Site, WebhookDelivery, WebhookEndpoint
from pinet.lifecycle import InvalidTransition, transition
from tests.factories import make_node, make_site

pytestmark = pytest.mark.django_db

PI_VENDOR = "PXEClient:Arch:00000:UNDI:002001"


def pi4(mac="dc:a6:32:01:36:c2", serial="9ffefdef", **extra) -> Sighting:
    fields = {
        "mac": mac,
        "message_type": 1,
        "vendor_class": PI_VENDOR,
        "arch": 0,
        "client_id": "00:52:50:69:34:11:31:c0:00:32:01:36:c2:ef:fd:fe:9f",
        "board_model": "pi4b",
        "revision": "00c03111",
        "serial": serial,
        "is_pi": True,
        "netboot": True,
    }
    fields.update(extra)
    return Sighting(**fields)


def pc(mac="52:54:00:12:34:56", **extra) -> Sighting:
    fields = {"mac": mac, "message_type": 1, "vendor_class": PI_VENDOR, "arch": 0, "board_model": "x86-bios"}
    fields.update({"netboot": True, **extra})
    return Sighting(**fields)


@pytest.fixture
def hook(db):
    return WebhookEndpoint.objects.create(
        url="https://billing.example.net/h", secret="s" * 20, events=["node.discovered"]
    )


def test_a_new_board_is_recorded_audited_once_and_announced(site, hook):
    board = discovery_record(site=site, sighting=pi4(circuit_id=b"ge-0/0/7".hex(), relay_address="198.51.100.1"))
    assert (board.status, board.board_model, board.serial, board.revision, board.is_pi) == (
        "new",
        "pi4b",
        "9ffefdef",
        "00c03111",
        True,
    )
    assert board.seen_count == 1 and board.first_seen == board.last_seen
    assert board.circuit_id_text == "ge-0/0/7" and board.relay_address == "198.51.100.1"
    for _ in range(3):
        again = discovery_record(site=site, sighting=pi4(), count=2)
    assert again.pk == board.pk and again.seen_count == 7
    assert DiscoveredBoard.objects.count() == 1
    audit = AuditLog.objects.filter(object_type="nodes.discoveredboard")
    assert list(audit.values_list("action", "actor_label")) == [("discovered_board.create", "discovery")]
    delivery = WebhookDelivery.objects.get()
    assert delivery.event == "node.discovered" and delivery.endpoint == hook
    assert delivery.payload["data"]["board"]["mac"] == "dc:a6:32:01:36:c2"
    assert delivery.payload["data"]["board"]["serial"] == "9ffefdef"


def test_the_webhook_is_sent_after_commit(site, hook, django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr("nodes.tasks.deliver_webhook_task.delay", lambda delivery_id: sent.append(delivery_id))
    with django_capture_on_commit_callbacks(execute=True):
        discovery_record(site=site, sighting=pi4())
        assert sent == []
    assert sent == [WebhookDelivery.objects.get().pk]


def test_times_move_forward_only(site):
    now = timezone.now()
    discovery_record(site=site, sighting=pi4(), seen_at=now)
    board = discovery_record(site=site, sighting=pi4(), seen_at=now - timedelta(minutes=5))
    assert board.last_seen == now and board.first_seen == now


def test_a_known_node_only_gets_last_seen(site):
    node = make_node(site=site, n=1, mac="dc:a6:32:01:36:c2")
    updated = Node.objects.get(pk=node.pk).updated
    assert discovery_record(site=site, sighting=pi4()) is None
    node = Node.objects.get(pk=node.pk)
    assert node.last_seen is not None and node.updated == updated
    assert not DiscoveredBoard.objects.exists()
    assert not AuditLog.objects.filter(object_type="nodes.discoveredboard").exists()


def test_a_node_at_another_site_is_known_too(site):
    other = make_site(name="Other", slug="other", subnet="198.51.100.0/24", boot_server="198.51.100.1",
                      range_start=None, range_end=None)  # fmt: skip
    make_node(site=other, n=1, mac="dc:a6:32:01:36:c2", ip=None)
    assert discovery_record(site=site, sighting=pi4()) is None
    assert not DiscoveredBoard.objects.exists()


def test_an_ordinary_dhcp_client_is_not_recorded(site):
    laptop = Sighting(mac="52:54:00:00:00:99", message_type=3, vendor_class="udhcp 1.35.0")
    assert discovery_record(site=site, sighting=laptop) is None
    assert not DiscoveredBoard.objects.exists()


def test_a_request_without_pi_options_counts_but_keeps_the_pi_identity(site):
    discovery_record(site=site, sighting=pi4())
    bare = Sighting(mac="dc:a6:32:01:36:c2", message_type=3)  # a Pi 4 REQUEST without option 60
    board = discovery_record(site=site, sighting=bare)
    assert board.seen_count == 2 and board.board_model == "pi4b" and board.serial == "9ffefdef"
    as_pc = discovery_record(site=site, sighting=pc(mac="dc:a6:32:01:36:c2"))
    assert as_pc.board_model == "pi4b" and as_pc.is_pi


def test_identity_follows_the_latest_request(site):
    discovery_record(site=site, sighting=pi4())
    board = discovery_record(site=site, sighting=pi4(circuit_id=b"ge-0/0/9".hex()))
    assert board.circuit_id_text == "ge-0/0/9"


def test_an_ignored_board_stays_ignored_but_is_counted(site):
    board = discovery_record(site=site, sighting=pi4())
    discovered_board_ignore(board=board, by=None)
    board = discovery_record(site=site, sighting=pi4(), count=4)
    assert board.status == "ignored" and board.seen_count == 5


def test_the_number_of_new_boards_per_site_is_capped(site, settings):
    settings.PINET_DISCOVERY_MAX_NEW = 2
    first = discovery_record(site=site, sighting=pc(mac="52:54:00:00:00:01"))
    discovery_record(site=site, sighting=pc(mac="52:54:00:00:00:02"))
    with pytest.raises(DiscoveryFull, match="PINET_DISCOVERY_MAX_NEW"):
        discovery_record(site=site, sighting=pc(mac="52:54:00:00:00:03"))
    assert DiscoveredBoard.objects.count() == 2
    # Boards already on record still update; ignoring one makes room.
    assert discovery_record(site=site, sighting=pc(mac="52:54:00:00:00:02")).seen_count == 2
    discovered_board_ignore(board=first, by=None)
    assert discovery_record(site=site, sighting=pc(mac="52:54:00:00:00:03")) is not None


def test_the_same_board_at_two_sites_is_two_records(site):
    other = make_site(name="Other", slug="other", subnet="198.51.100.0/24", boot_server="198.51.100.1",
                      range_start=None, range_end=None)  # fmt: skip
    discovery_record(site=site, sighting=pi4())
    discovery_record(site=other, sighting=pi4())
    assert DiscoveredBoard.objects.filter(mac="dc:a6:32:01:36:c2").count() == 2


# --- adoption -----------------------------------------------------------------------------------


def test_adopt_makes_a_node_with_the_board_identity(site, tenant, operator):
    sighting = pi4(circuit_id=b"ge-0/0/7".hex(), remote_id="0006001122334455")
    board = discovery_record(site=site, sighting=sighting)
    requested = Site.objects.get(pk=site.pk).config_requested
    node = discovered_board_adopt(board=board, hostname="pi4-9ffefdef", ip="192.0.2.20", tenant=tenant, by=operator)
    node = Node.objects.get(pk=node.pk)
    assert (node.mac, node.serial, node.board_model, node.client_id) == (
        "dc:a6:32:01:36:c2",
        "9ffefdef",
        "pi4b",
        sighting.client_id,
    )
    assert (node.relay_circuit_id, node.relay_remote_id) == ("ge-0/0/7", "hex:0006001122334455")
    assert (node.ip, node.tenant, node.state, node.boot_mode) == ("192.0.2.20", tenant, "ready", "local")
    assert node.last_seen == board.last_seen
    board.refresh_from_db()
    assert (board.status, board.node) == ("adopted", node)
    actions = set(AuditLog.objects.filter(actor=operator).values_list("action", flat=True))
    assert {"node.create", "discovered_board.adopt"} <= actions
    assert Site.objects.get(pk=site.pk).config_requested > requested
    # From now on the board is a known node.
    assert discovery_record(site=site, sighting=pi4()) is None


def test_adopt_accepts_a_model_correction_and_netboot(site, operator):
    board = discovery_record(site=site, sighting=pi4())
    node = discovered_board_adopt(board=board, hostname="cm4-a", board_model="cm4", boot_mode="netboot", by=operator)
    assert (node.board_model, node.boot_mode, node.ip) == ("cm4", "netboot", None)


def test_a_pi3b_constant_client_id_is_not_copied(site, operator):
    guid = "00:" + ":".join(["44"] * 16)
    pi3 = Sighting(mac="b8:27:eb:28:f6:6d", message_type=1, vendor_class=PI_VENDOR, arch=0, client_id=guid,
                   board_model="pi3b", is_pi=True, netboot=True)  # fmt: skip
    node = discovered_board_adopt(board=discovery_record(site=site, sighting=pi3), hostname="pi3-a", by=operator)
    assert node.client_id == ""
    assert AuditLog.objects.get(action="discovered_board.adopt").data["client_id_not_copied"]


def test_a_client_id_another_node_has_is_not_copied(site, operator):
    make_node(site=site, n=1, client_id="00:01:02")
    board = discovery_record(site=site, sighting=pc(client_id="00:01:02"))
    assert discovered_board_adopt(board=board, hostname="pc-a", by=operator).client_id == ""


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"hostname": "Not_A_Name"}, "hostname", "not a valid host name"),
        ({"hostname": "pc-a", "ip": "192.0.2.150"}, "ip", "inside the dynamic range"),
        ({"hostname": "pc-a", "ip": "192.0.2.1"}, "ip", "boot server"),
        ({"hostname": "pc-a", "ip": "203.0.113.5"}, "ip", "outside the site subnet"),
        ({"hostname": "pc-a", "ip": "192.0.2.300"}, "ip", "valid IPv4"),
        ({"hostname": "pc-a", "ip": "192.0.2.11"}, "ip", "already reserved by pi-1"),
        ({"hostname": "pi-1"}, "hostname", "already has a node called pi-1"),
        ({"hostname": "pc-a", "boot_mode": "install"}, "boot_mode", "reinstall"),
        ({"hostname": "pc-a", "board_model": "pi9"}, "board_model", "not a board model"),
    ],
)
def test_a_refused_adoption_leaves_nothing_half_done(site, operator, fields, field, message):
    make_node(site=site, n=1)  # pi-1 at 192.0.2.11
    board = discovery_record(site=site, sighting=pc())
    nodes, audits = Node.objects.count(), AuditLog.objects.count()
    with pytest.raises(ValidationError) as refused:
        discovered_board_adopt(board=board, by=operator, **fields)
    if field:
        assert field in refused.value.message_dict
    assert message in str(refused.value)
    assert Node.objects.count() == nodes and AuditLog.objects.count() == audits
    board.refresh_from_db()
    assert (board.status, board.node) == ("new", None)


def test_a_second_node_on_the_same_switch_port_is_refused(site, operator):
    make_node(site=site, n=1, relay_circuit_id="ge-0/0/7")
    board = discovery_record(site=site, sighting=pc(circuit_id=b"ge-0/0/7".hex()))
    with pytest.raises(ValidationError, match="switch port"):
        discovered_board_adopt(board=board, hostname="pc-a", by=operator)
    assert DiscoveredBoard.objects.get(pk=board.pk).status == "new"


def test_an_adopted_board_cannot_be_adopted_again(site, operator):
    board = discovery_record(site=site, sighting=pc())
    discovered_board_adopt(board=board, hostname="pc-a", by=operator)
    with pytest.raises(InvalidTransition, match="already adopted"):
        discovered_board_adopt(board=board, hostname="pc-b", by=operator)
    assert Node.objects.count() == 1


def test_adopting_also_settles_the_record_at_another_site(site, operator):
    other = make_site(name="Other", slug="other", subnet="198.51.100.0/24", boot_server="198.51.100.1",
                      range_start=None, range_end=None)  # fmt: skip
    here = discovery_record(site=site, sighting=pc())
    there = discovery_record(site=other, sighting=pc())
    node = discovered_board_adopt(board=here, hostname="pc-a", by=operator)
    there.refresh_from_db()
    assert (there.status, there.node) == ("adopted", node)


def test_an_ignored_board_can_be_adopted(site, operator):
    board = discovery_record(site=site, sighting=pc())
    discovered_board_ignore(board=board, by=operator)
    assert discovered_board_adopt(board=board, hostname="pc-a", by=operator).mac == board.mac


def test_deleting_the_node_forgets_the_board(site, operator):
    board = discovery_record(site=site, sighting=pc())
    discovered_board_adopt(board=board, hostname="pc-a", by=operator).delete()
    assert not DiscoveredBoard.objects.exists()
    assert discovery_record(site=site, sighting=pc()).status == "new"


# --- ignore / un-ignore --------------------------------------------------------------------------


def test_ignore_and_unignore_are_audited_and_idempotent(site, operator):
    board = discovery_record(site=site, sighting=pc())
    discovered_board_ignore(board=board, by=operator)
    discovered_board_ignore(board=board, by=operator)
    assert DiscoveredBoard.objects.get(pk=board.pk).status == "ignored"
    discovered_board_unignore(board=board, by=operator)
    discovered_board_unignore(board=board, by=operator)
    assert DiscoveredBoard.objects.get(pk=board.pk).status == "new"
    actions = list(AuditLog.objects.filter(actor=operator).order_by("pk").values_list("action", flat=True))
    assert actions == ["discovered_board.ignore", "discovered_board.unignore"]


def test_an_adopted_board_cannot_be_ignored(site, operator):
    board = discovery_record(site=site, sighting=pc())
    discovered_board_adopt(board=board, hostname="pc-a", by=operator)
    with pytest.raises(InvalidTransition):
        discovered_board_ignore(board=board, by=operator)


def test_transition_table_covers_every_status():
    assert set(DISCOVERY_TRANSITIONS) == set(DiscoveryStatus.values)
    for targets in DISCOVERY_TRANSITIONS.values():
        assert targets <= set(DiscoveryStatus.values)


@pytest.mark.parametrize("start", [DiscoveryStatus.NEW, DiscoveryStatus.IGNORED])
@pytest.mark.parametrize("to", [DiscoveryStatus.NEW, DiscoveryStatus.IGNORED])
def test_every_pair_without_a_node_follows_the_table(site, start, to):
    board = discovery_record(site=site, sighting=pc())
    DiscoveredBoard.objects.filter(pk=board.pk).update(status=start)
    board.refresh_from_db()
    if to in DISCOVERY_TRANSITIONS[start]:
        transition(obj=board, table=DISCOVERY_TRANSITIONS, to=to, field="status")
        assert DiscoveredBoard.objects.get(pk=board.pk).status == to
    else:
        with pytest.raises(InvalidTransition):
            transition(obj=board, table=DISCOVERY_TRANSITIONS, to=to, field="status")
