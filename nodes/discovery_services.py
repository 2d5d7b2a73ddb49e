"""Writes for discovered boards: record what the listener heard, adopt a board as a node,
ignore (blocklist) it or take it back. Each writes its rows and audit entry in one transaction."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from pinet.lifecycle import InvalidTransition, transition

from .choices import DISCOVERY_TRANSITIONS, BoardModel, BootMode, DiscoveryStatus, NodeState
from .discovery import Sighting, relay_id_for_node
from .models import DiscoveredBoard, Node, Site, Tenant, _is_ipv4
from .services import audit_log_write, node_create
from .webhooks import webhook_emit

DISCOVERY_ACTOR = "discovery"


class DiscoveryFull(Exception):
    """The site already holds PINET_DISCOVERY_MAX_NEW new boards; a newcomer is not recorded."""


def _identity(sighting: Sighting) -> dict:
    return {
        "vendor_class": sighting.vendor_class,
        "arch": sighting.arch,
        "client_id": sighting.client_id,
        "board_model": sighting.board_model,
        "revision": sighting.revision,
        "serial": sighting.serial,
        "is_pi": sighting.is_pi,
        "circuit_id": sighting.circuit_id,
        "remote_id": sighting.remote_id,
        "relay_address": sighting.relay_address,
    }


def board_payload(board: DiscoveredBoard) -> dict:
    """A board as webhooks describe it."""
    return {
        "id": board.pk,
        "site": board.site.slug,
        "mac": board.mac,
        "board_model": board.board_model,
        "serial": board.serial,
        "is_pi": board.is_pi,
        "vendor_class": board.vendor_class,
        "arch": board.arch,
        "circuit_id": board.circuit_id_text,
        "remote_id": board.remote_id_text,
        "first_seen": board.first_seen.isoformat(),
    }


def node_mark_seen(*, mac: str, at: datetime) -> bool:
    """Note that a node's board was heard on the network. Telemetry, not a change anyone made:
    no audit entry, no reconfiguration, and Node.updated stays as it was."""
    return Node.objects.filter(mac=mac).update(last_seen=at) > 0


@transaction.atomic
def discovery_record(
    *, site: Site, sighting: Sighting, count: int = 1, seen_at: datetime | None = None
) -> DiscoveredBoard | None:
    """Record that a board asked ``site`` for a boot (``count`` requests, the last at ``seen_at``).

    A node's MAC only moves that node's last_seen; a client that did not ask for a network boot
    (an ordinary DHCP client) is not recorded. A board already on record gets its times, count
    and identity refreshed; an ignored one stays ignored. A new board is audited once and
    announced with the webhook ``node.discovered`` when the transaction commits. Returns the
    board, or None when nothing was recorded; raises DiscoveryFull when the site already has
    PINET_DISCOVERY_MAX_NEW new boards.
    """
    now = seen_at or timezone.now()
    count = max(1, int(count))
    if node_mark_seen(mac=sighting.mac, at=now):
        return None
    board = DiscoveredBoard.objects.select_for_update().filter(site=site, mac=sighting.mac).first()
    if board is None:
        if not sighting.netboot:
            return None
        new = DiscoveredBoard.objects.filter(site=site, status=DiscoveryStatus.NEW).count()
        if new >= settings.PINET_DISCOVERY_MAX_NEW:
            raise DiscoveryFull(
                f"site {site.slug} already has {new} new boards (PINET_DISCOVERY_MAX_NEW); "
                f"{sighting.mac} was not recorded"
            )
        try:
            with transaction.atomic():
                board = DiscoveredBoard.objects.create(
                    site=site, mac=sighting.mac, first_seen=now, last_seen=now, seen_count=count, **_identity(sighting)
                )
        except IntegrityError:
            # Another writer recorded it a moment ago (a second listener): count this as a sighting.
            board = DiscoveredBoard.objects.select_for_update().get(site=site, mac=sighting.mac)
        else:
            audit_log_write(
                actor=None,
                label=DISCOVERY_ACTOR,
                action="discovered_board.create",
                obj=board,
                data={"mac": board.mac, "site": site.slug, "board_model": board.board_model, "serial": board.serial},
            )
            webhook_emit(event="node.discovered", data={"board": board_payload(board)})
            return board
    changes: dict = {"last_seen": max(now, board.last_seen), "seen_count": F("seen_count") + count}
    # The latest request describes the board best, except that a request without the Pi's
    # options (a Pi 4 REQUEST may lack option 60) never turns a known Pi back into a PC.
    if sighting.netboot and (sighting.is_pi or not board.is_pi):
        changes.update(_identity(sighting))
    DiscoveredBoard.objects.filter(pk=board.pk).update(**changes)
    board.refresh_from_db()
    return board


def _suggested_client_id(board: DiscoveredBoard) -> tuple[str, str]:
    """(client id to copy to the node, why another was skipped). Option 97 is copied only
    when it names this board: every Pi 3B sends the same constant, and cheap x86 firmware
    often sends one shared UUID (which another node then already has)."""
    if not board.client_id:
        return "", ""
    if board.board_model == BoardModel.PI3B:
        return "", "the Pi 3B ROM sends a constant option 97"
    if Node.objects.filter(client_id=board.client_id).exists():
        return "", "another node already has this option 97 client id"
    return board.client_id, ""


@transaction.atomic
def discovered_board_adopt(
    *,
    board: DiscoveredBoard,
    hostname: str,
    ip: str | None = None,
    tenant: Tenant | None = None,
    boot_mode: str = BootMode.LOCAL,
    image=None,
    board_model: str | None = None,
    by: AbstractBaseUser | None,
) -> Node:
    """Make a discovered board a node of its site: node_create (with all its validation, the
    audit entry and the site's reconfiguration) with the board's identity (MAC, serial, model,
    option 97 client id, option 82 circuit/remote ids), then mark the board adopted. One
    transaction: a refusal leaves neither a node nor a changed board."""
    board = DiscoveredBoard.objects.select_for_update().select_related("site").get(pk=board.pk)
    if DiscoveryStatus.ADOPTED not in DISCOVERY_TRANSITIONS[board.status]:
        raise InvalidTransition(f"{board.mac} is already adopted (node {board.node_id}).")
    if boot_mode not in (BootMode.LOCAL, BootMode.NETBOOT):
        raise ValidationError(
            {"boot_mode": "Adopt a board as local or netboot; install mode comes with a reinstall afterwards."}
        )
    model = board_model or board.board_model
    if model not in BoardModel.values:
        raise ValidationError(
            {"board_model": f"{model!r} is not a board model: use one of {', '.join(BoardModel.values)}."}
        )
    # Named here, with the field, rather than as the constraints' site-wide complaints.
    taken = Node.objects.filter(site=board.site, hostname=str(hostname).strip().lower()).first()
    if taken is not None:
        raise ValidationError({"hostname": f"{board.site.slug} already has a node called {taken.hostname}."})
    # A malformed address is left to node_create, which says what is wrong with it.
    holder = Node.objects.filter(site=board.site, ip=str(ip)).first() if ip and _is_ipv4(ip) else None
    if holder is not None:
        raise ValidationError({"ip": f"{ip} is already reserved by {holder.hostname}."})
    client_id, skipped = _suggested_client_id(board)
    node = node_create(
        by=by,
        site=board.site,
        hostname=hostname,
        mac=board.mac,
        serial=board.serial,
        board_model=model,
        ip=ip or None,
        tenant=tenant,
        client_id=client_id,
        relay_circuit_id=relay_id_for_node(board.circuit_id),
        relay_remote_id=relay_id_for_node(board.remote_id),
        boot_mode=boot_mode,
        image=image,
        state=NodeState.READY,
        last_seen=board.last_seen,
    )
    transition(obj=board, table=DISCOVERY_TRANSITIONS, to=DiscoveryStatus.ADOPTED, field="status", node=node)
    data = {"node": node.pk, "hostname": node.hostname, "site": board.site.slug}
    if skipped:
        data["client_id_not_copied"] = skipped
    audit_log_write(actor=by, action="discovered_board.adopt", obj=board, data=data)
    # The same board heard at other sites (a listener on each) is this node too.
    for twin in DiscoveredBoard.objects.select_for_update().filter(mac=board.mac).exclude(pk=board.pk):
        if DiscoveryStatus.ADOPTED in DISCOVERY_TRANSITIONS[twin.status]:
            transition(obj=twin, table=DISCOVERY_TRANSITIONS, to=DiscoveryStatus.ADOPTED, field="status", node=node)
    return node


@transaction.atomic
def discovered_board_ignore(*, board: DiscoveredBoard, by: AbstractBaseUser | None) -> DiscoveredBoard:
    """Put a board on the site's blocklist: it stays out of the new list (its last_seen and
    count still move). Ignoring an ignored board changes nothing."""
    board = DiscoveredBoard.objects.select_for_update().get(pk=board.pk)
    if board.status != DiscoveryStatus.IGNORED:
        transition(obj=board, table=DISCOVERY_TRANSITIONS, to=DiscoveryStatus.IGNORED, field="status")
        audit_log_write(actor=by, action="discovered_board.ignore", obj=board)
    return board


@transaction.atomic
def discovered_board_unignore(*, board: DiscoveredBoard, by: AbstractBaseUser | None) -> DiscoveredBoard:
    """Take a board off the blocklist: it is new again, ready to adopt."""
    board = DiscoveredBoard.objects.select_for_update().get(pk=board.pk)
    if board.status != DiscoveryStatus.NEW:
        transition(obj=board, table=DISCOVERY_TRANSITIONS, to=DiscoveryStatus.NEW, field="status")
        audit_log_write(actor=by, action="discovered_board.unignore", obj=board)
    return board
