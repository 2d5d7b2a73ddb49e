"""Reads for nodes, sites and tenants. Every one starts from visible_to(user)."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from .choices import NodeState
from .models import AuditLog, Node, Site, Tenant


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


def installable_images(*, user, node) -> list:
    """Ready OS images the user may install on this node (its architecture)."""
    from images.choices import ImageKind, ImageState
    from images.models import OSImage
    from provisioning.services import arch_fits

    images = (
        OSImage.objects.visible_to(user).filter(state=ImageState.READY, kind=ImageKind.OS).order_by("name", "-version")
    )
    return [image for image in images if arch_fits(node, image) and image.artefact_path]


def bulk_images(*, user) -> list:
    """Ready OS images with an install artefact (the bulk reinstall offers these; the
    reinstall service still checks each board's architecture)."""
    from images.choices import ImageKind, ImageState
    from images.models import OSImage

    images = OSImage.objects.visible_to(user).filter(state=ImageState.READY, kind=ImageKind.OS)
    return [image for image in images.order_by("name", "-version") if image.artefact_path]


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
    from django.db.models import OuterRef, Q, Subquery

    last = ConfigRevision.objects.filter(site=OuterRef("pk")).order_by("-created", "-pk")
    per_state = {f"n_{state}": Count("nodes", filter=Q(nodes__state=state)) for state in NodeState.values}
    rows = Site.objects.annotate(
        **per_state,
        discovered=Count("nodes", filter=Q(nodes__state="discovered")),
        revision_status=Subquery(last.values("status")[:1]),
        revision_created=Subquery(last.values("created")[:1]),
        revision_output=Subquery(last.values("validator_output")[:1]),
    )
    sites = [
        {
            "site": site,
            "discovered": site.discovered,
            "states": {state: getattr(site, f"n_{state}") for state in NodeState.values},
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
