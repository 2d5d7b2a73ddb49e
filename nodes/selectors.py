"""Reads for nodes, sites and tenants. Every one starts from visible_to(user)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet

from pinet.api import role

from .choices import BoardModel, DiscoveryStatus, NodeState
from .models import AuditLog, DiscoveredBoard, Node, Site, Tenant


def node_list(*, user) -> QuerySet[Node]:
    return Node.objects.visible_to(user).select_related("site", "tenant", "image")


def node_get(*, user, pk: int) -> Node:
    """The node, or Node.DoesNotExist when it is missing or belongs to another tenant (a 404)."""
    return node_list(user=user).get(pk=pk)


def node_state_counts(*, user) -> dict[str, int]:
    counts = {state: 0 for state in NodeState.values}
    for row in Node.objects.visible_to(user).values("state").annotate(n=Count("pk")).order_by():
        counts[row["state"]] = row["n"]
    return counts


def site_list(*, user) -> QuerySet[Site]:
    return Site.objects.visible_to(user)


def tenant_list(*, user) -> QuerySet[Tenant]:
    return Tenant.objects.visible_to(user)


def audit_log_list(*, user) -> QuerySet[AuditLog]:
    # The audit log is the operators' record; customers see theirs through job timelines.
    if not (user and user.is_authenticated and user.is_active and user.is_staff):
        return AuditLog.objects.none()
    return AuditLog.objects.select_related("actor")


def site_queue_names() -> list[str]:
    """The Celery queue of every site's boot server worker (``site.<slug>``)."""
    return [f"site.{slug}" for slug in Site.objects.order_by("slug").values_list("slug", flat=True)]


def bulk_images(*, user) -> list:
    """Ready OS images with an install artefact, whatever the board (the bulk reinstall
    offers these; the reinstall service still checks each board's architecture)."""
    from images.choices import ImageKind, ImageState
    from images.models import OSImage

    images = OSImage.objects.visible_to(user).filter(state=ImageState.READY, kind=ImageKind.OS)
    return [image for image in images.order_by("name", "-version") if image.artefact_path]


def installable_images(*, user, node) -> list:
    """Ready OS images the user may install on this node (its architecture)."""
    from provisioning.services import arch_fits

    return [image for image in bulk_images(user=user) if arch_fits(node, image)]


def node_jobs(*, user, node):
    from provisioning.models import InstallJob

    return InstallJob.objects.visible_to(user).filter(node=node).select_related("image").prefetch_related("events")


def operator_overview(*, user) -> dict:
    """What an operator checks first: installs running, recent failures, each site's config."""
    from provisioning.models import ConfigRevision, InstallJob

    if not (user and user.is_authenticated and user.is_staff):
        return {}
    running = InstallJob.objects.filter(status__in=["pending", "running"]).select_related("node", "image")[:20]
    failed = InstallJob.objects.filter(status="failed").select_related("node", "image").order_by("-finished_at")[:5]
    from django.db.models import OuterRef, Subquery

    last = ConfigRevision.objects.filter(site=OuterRef("pk")).order_by("-created", "-pk")
    # Counted per site in two grouped queries, not as joins on the site query: two to-many
    # joins there would multiply each other's rows (nodes x discovered boards).
    states: dict[int, dict[str, int]] = {}
    for row in Node.objects.values("site_id", "state").annotate(n=Count("pk")).order_by():
        states.setdefault(row["site_id"], dict.fromkeys(NodeState.values, 0))[row["state"]] = row["n"]
    discovered = dict(
        DiscoveredBoard.objects.filter(status=DiscoveryStatus.NEW)
        .values("site_id")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("site_id", "n")
    )
    rows = Site.objects.annotate(
        revision_status=Subquery(last.values("status")[:1]),
        revision_created=Subquery(last.values("created")[:1]),
        revision_output=Subquery(last.values("validator_output")[:1]),
    )
    sites = [
        {
            "site": site,
            "discovered": discovered.get(site.pk, 0),
            "states": states.get(site.pk, dict.fromkeys(NodeState.values, 0)),
            "revision": {
                "status": site.revision_status,
                "created": site.revision_created,
                "validator_output": site.revision_output,
            }
            if site.revision_status
            else None,
        }
        for site in rows
    ]
    return {"running": list(running), "failed": list(failed), "sites": sites}


def discovered_board_list(*, user) -> QuerySet[DiscoveredBoard]:
    """Boards heard asking for a boot: operators only (a customer, or a billing key, gets none)."""
    if role(user) != "operator":
        return DiscoveredBoard.objects.none()
    return DiscoveredBoard.objects.select_related("site", "node")


def discovered_board_get(*, user, pk: int) -> DiscoveredBoard:
    """The board, or DiscoveredBoard.DoesNotExist (a 404) for a missing one or a non-operator."""
    return discovered_board_list(user=user).get(pk=pk)


_HOSTNAME_PREFIXES = {
    BoardModel.PI3B: "pi3",
    BoardModel.PI3BPLUS: "pi3",
    BoardModel.PI4B: "pi4",
    BoardModel.CM4: "cm4",
    BoardModel.PI5: "pi5",
    BoardModel.X86_BIOS: "pc",
    BoardModel.X86_UEFI: "pc",
    BoardModel.ARM64_UEFI: "arm64",
}


def hostname_suggest(*, board: DiscoveredBoard) -> str:
    """A host name for adopting the board, free in its site: ``pi4-<serial>`` for a Pi with a
    serial, else ``<kind>-<last 6 MAC digits>`` (``pc-0a1b2c``, ``board-…`` when unknown)."""
    prefix = _HOSTNAME_PREFIXES.get(board.board_model, "pi" if board.is_pi else "board")
    base = f"{prefix}-{board.serial[-8:]}" if board.serial else f"{prefix}-{board.mac.replace(':', '')[-6:]}"
    taken = set(
        Node.objects.filter(site_id=board.site_id, hostname__startswith=base).values_list("hostname", flat=True)
    )
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def ip_next_free(*, site: Site) -> str | None:
    """The first address of the site's subnet a new node may reserve, or None when there is
    none: not the network or broadcast address, not the boot server, gateway, NFS server, a
    DNS server or a relay, outside the dynamic range, and reserved by no node of the site."""
    network = site.network
    taken = {str(ip) for ip in Node.objects.filter(site=site, ip__isnull=False).values_list("ip", flat=True)}
    taken |= {a for a in (site.boot_server, site.gateway, site.nfs_server) if a}
    taken |= set(site.dns_server_list) | set(site.relay_address_list)
    for address in network.hosts():
        text = str(address)
        if text in taken or site.in_dynamic_range(text):
            continue
        try:
            # Node's own address rules have the last word, so a suggestion is never refused.
            Node(site=site, ip=text).clean()
        except ValidationError:
            continue
        return text
    return None
