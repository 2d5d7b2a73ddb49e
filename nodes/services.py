"""Writes for sites, tenants and nodes. Each validates fully, writes the row and an audit
entry in one transaction, and turns a database rule violation into a ValidationError."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from pinet.lifecycle import InvalidTransition, transition

from .choices import NODE_TRANSITIONS, BootMode, NodeState
from .dbrules import RULE_MESSAGES
from .models import AuditLog, Node, Site, Tenant, TenantMembership

# Messages for rules whose violation can only come from a lost race or a direct write
# (full_clean catches the rest first, with the field named). Each rule is matched by its
# PostgreSQL constraint name or by SQLite's "UNIQUE constraint failed: <columns>" text.
_CONSTRAINT_MESSAGES: list[tuple[tuple[str, ...], str]] = [
    *(((name,), message) for name, message in RULE_MESSAGES.items()),
    (("nodes_node_mac_key", "nodes_node.mac"), "Another node already has this MAC address."),
    (("nodes_node_serial_key", "nodes_node.serial"), "Another node already has this Pi serial."),
    (
        ("nodes_node_unique_hostname_per_site", "nodes_node.site_id, nodes_node.hostname"),
        "This site already has a node with that host name.",
    ),
    (
        ("nodes_node_unique_ip_per_site", "nodes_node.site_id, nodes_node.ip"),
        "Another node in this site already has that reserved address.",
    ),
    (
        ("provisioning_installjob_one_active_per_node", "provisioning_installjob.node_id"),
        "This node already has an install job in progress.",
    ),
]


def reconfigure_sites(*sites: Site) -> None:
    """Queue the sites' DHCP/TFTP/NFS apply for after this transaction commits."""
    from provisioning.services import site_config_request

    for site in {s.pk: s for s in sites if s is not None}.values():
        site_config_request(site=site)


def user_or_none(actor):
    """The user behind an actor, or None for an API key or the system (foreign keys need a user)."""
    from django.contrib.auth import get_user_model

    return actor if isinstance(actor, get_user_model()) else None


def actor_label(actor: AbstractBaseUser | None) -> str:
    return actor.get_username() if actor is not None else "system"


def audit_log_write(
    *,
    actor: AbstractBaseUser | None,
    action: str,
    obj: models.Model,
    data: dict[str, Any] | None = None,
    label: str | None = None,
) -> AuditLog:
    """Record an action; call it inside the transaction that made the change."""
    return AuditLog.objects.create(
        actor=user_or_none(actor),
        actor_label=label or actor_label(actor),
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        data=data or {},
    )


@contextmanager
def translate_integrity_errors():
    """Turn a constraint violation (a lost race, or a trigger) into a readable ValidationError."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        text = str(exc)
        for patterns, message in _CONSTRAINT_MESSAGES:
            if any(pattern in text for pattern in patterns):
                raise ValidationError(message, code=patterns[0]) from exc
        raise ValidationError(f"The change conflicts with existing data: {text.splitlines()[0]}") from exc


def validated_save(obj: models.Model, fields: list[str] | None = None) -> None:
    """Validate and save; an update writes only ``fields``, so a stale copy never undoes
    changes others made meanwhile (a boot mode, the config counters)."""
    obj.full_clean()
    with translate_integrity_errors():
        if fields is None:
            obj.save()
        else:
            obj.save(update_fields=[*fields, *(["updated"] if hasattr(obj, "updated") else [])])


def _apply_changes(obj: models.Model, fields: dict[str, Any], allowed: frozenset[str]) -> dict[str, list]:
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError(f"These fields cannot be changed here: {', '.join(sorted(unknown))}.")
    changes = {}
    for name, value in fields.items():
        field = obj._meta.get_field(name)
        if field.is_relation:
            # Compare ids: reading an unset relation on a new object raises.
            old, new = getattr(obj, field.attname), getattr(value, "pk", value)
        else:
            old, new = getattr(obj, name), value
        if old != new or obj._state.adding:
            changes[name] = [_jsonable(old), _jsonable(new)]
            setattr(obj, name, value)
    return changes


def _jsonable(value: Any) -> Any:
    if isinstance(value, models.Model):
        return value.pk
    if value is None or isinstance(value, (bool, int, float, str, list, dict)):
        return value
    return str(value)


SITE_FIELDS = frozenset(
    {
        "name",
        "slug",
        "boot_server",
        "interface",
        "subnet",
        "gateway",
        "dns_servers",
        "range_start",
        "range_end",
        "dhcp_backend",
        "nfs_server",
        "discovery_enabled",
        "relay_addresses",
        "dns_domain",
        "lease_time",
        "pi3_reply_delay",
        "boot_url_base",
    }
)


# The slug names the site's queue and directories: changing it would strand both.
SITE_UPDATE_FIELDS = SITE_FIELDS - {"slug"}


@transaction.atomic
def site_create(*, by: AbstractBaseUser | None, **fields: Any) -> Site:
    """Create a boot site."""
    site = Site()
    _apply_changes(site, fields, SITE_FIELDS)
    validated_save(site)
    audit_log_write(actor=by, action="site.create", obj=site, data={"subnet": site.subnet})
    reconfigure_sites(site)
    return site


@transaction.atomic
def site_update(*, site: Site, by: AbstractBaseUser | None, **fields: Any) -> Site:
    """Change a site; refused if it would strand a node's reserved address."""
    changes = _apply_changes(site, fields, SITE_UPDATE_FIELDS)
    if changes:
        validated_save(site, list(changes))
        audit_log_write(actor=by, action="site.update", obj=site, data=changes)
        reconfigure_sites(site)
    return site


@transaction.atomic
def tenant_create(*, by: AbstractBaseUser | None, name: str, slug: str, ssh_keys: str = "") -> Tenant:
    """Create a customer organisation."""
    tenant = Tenant(name=name, slug=slug, ssh_keys=ssh_keys)
    validated_save(tenant)
    audit_log_write(actor=by, action="tenant.create", obj=tenant)
    return tenant


@transaction.atomic
def tenant_member_add(*, tenant: Tenant, user: AbstractBaseUser, by: AbstractBaseUser | None) -> TenantMembership:
    """Let a user see and manage the tenant's boards (idempotent)."""
    membership, created = TenantMembership.objects.get_or_create(tenant=tenant, user=user)
    if created:
        audit_log_write(actor=by, action="tenant.member_add", obj=tenant, data={"user": user.get_username()})
    return membership


NODE_CREATE_FIELDS = frozenset(
    {
        "site",
        "tenant",
        "hostname",
        "mac",
        "serial",
        "board_model",
        "ip",
        "relay_circuit_id",
        "relay_remote_id",
        "client_id",
        "boot_mode",
        "image",
        "state",
        "power_driver",
        "power_params",
        "last_seen",
    }
)
# State and boot mode change through their own services, which also reconfigure the site.
NODE_UPDATE_FIELDS = NODE_CREATE_FIELDS - {"state", "boot_mode"}


@transaction.atomic
def node_create(*, by: AbstractBaseUser | None, **fields: Any) -> Node:
    """Register a node (an operator adding a board, or the demo)."""
    node = Node()
    _apply_changes(node, fields, NODE_CREATE_FIELDS)
    validated_save(node)
    audit_log_write(
        actor=by,
        action="node.create",
        obj=node,
        data={"mac": node.mac, "site": node.site.slug, "ip": node.ip, "boot_mode": node.boot_mode},
    )
    reconfigure_sites(node.site)
    return node


@transaction.atomic
def node_update(*, node: Node, by: AbstractBaseUser | None, **fields: Any) -> Node:
    """Change a node's identity, placement, tenant or power settings."""
    old_site = node.site
    changes = _apply_changes(node, fields, NODE_UPDATE_FIELDS)
    if changes:
        validated_save(node, list(changes))
        audit_log_write(actor=by, action="node.update", obj=node, data=changes)
        reconfigure_sites(old_site, node.site)
        if "tenant" in changes:
            _emit("node.assigned" if node.tenant_id else "node.released", node)
    return node


def _emit(event: str, node: Node) -> None:
    from .webhooks import webhook_emit

    webhook_emit(
        event=event,
        data={
            "node": {
                "id": node.pk,
                "hostname": node.hostname,
                "mac": node.mac,
                "site": node.site.slug,
                "tenant": node.tenant.slug if node.tenant_id else None,
                "state": node.state,
                "boot_mode": node.boot_mode,
            },
        },
    )


@transaction.atomic
def node_set_boot_mode(*, node: Node, mode: str, by: AbstractBaseUser | None) -> Node:
    """Switch how the node boots (local SD/disk, network, installer) and reconfigure its site."""
    if mode not in BootMode.values:
        raise ValidationError({"boot_mode": f"{mode!r} is not a boot mode: use one of {', '.join(BootMode.values)}."})
    node = Node.objects.select_for_update().get(pk=node.pk)
    if node.state == NodeState.SUSPENDED:
        raise ValidationError({"boot_mode": f"{node.hostname} is suspended; its boot mode cannot change."})
    if mode == BootMode.INSTALL:
        raise ValidationError({"boot_mode": "Install mode comes with a reinstall (it needs an image and a job)."})
    if node.install_jobs.filter(status__in=["pending", "running"]).exists():
        raise ValidationError({"boot_mode": f"{node.hostname} is being reinstalled; cancel that job first."})
    before = node.boot_mode
    if before == mode:
        return node
    updated = Node.objects.filter(pk=node.pk, boot_mode=before).update(boot_mode=mode, updated=timezone.now())
    if updated != 1:
        raise ValidationError("The node's boot mode was changed by someone else meanwhile; reload and try again.")
    node.boot_mode = mode
    audit_log_write(actor=by, action="node.boot_mode", obj=node, data={"from": before, "to": mode})
    reconfigure_sites(node.site)
    # The new mode takes effect at the next boot: reboot through the driver when there is one.
    from .power.services import node_power_reboot

    node_power_reboot(node=node, by=by, reason=f"boot mode {before} -> {mode}")
    return node


@transaction.atomic
def node_transition(*, node: Node, to: str, by: AbstractBaseUser | None, reason: str = "") -> Node:
    """Move a node through its lifecycle (NODE_TRANSITIONS), compare-and-swap."""
    before = node.state
    transition(obj=node, table=NODE_TRANSITIONS, to=to, field="state")
    audit_log_write(actor=by, action="node.state", obj=node, data={"from": before, "to": to, "reason": reason})
    reconfigure_sites(node.site)
    if to == NodeState.SUSPENDED:
        _emit("node.suspended", node)
    return node


# Bulk actions from the fleet table. Each board succeeds or fails on its own (its own
# transaction, its own audit row): one refused board must not undo the other ninety-nine.
BULK_ACTIONS = ("boot_mode", "reinstall", "assign", "release")
BULK_MAX = 500


@dataclass(frozen=True)
class BulkOutcome:
    done: tuple[str, ...]  # host names
    refused: tuple[tuple[str, str], ...]  # (host name, why)


def node_bulk_action(
    *,
    nodes: list[Node],
    action: str,
    by: AbstractBaseUser | None,
    boot_mode: str = "",
    image: Any = None,
    tenant: Tenant | None = None,
) -> BulkOutcome:
    """Apply one operator action to many boards through the single-board services."""
    from provisioning.services import node_request_reinstall

    if action not in BULK_ACTIONS:
        raise ValidationError({"action": f"{action!r} is not a bulk action: use one of {', '.join(BULK_ACTIONS)}."})
    if not nodes:
        raise ValidationError("Select at least one board.")
    if len(nodes) > BULK_MAX:
        raise ValidationError(f"At most {BULK_MAX} boards at once; narrow the filter.")
    if action == "reinstall" and image is None:
        raise ValidationError({"image": "Pick the image to install."})
    if action == "assign" and tenant is None:
        raise ValidationError({"tenant": "Pick the tenant to assign the boards to."})
    done, refused = [], []
    for node in nodes:
        try:
            if action == "boot_mode":
                node_set_boot_mode(node=node, mode=boot_mode, by=by)
            elif action == "reinstall":
                node_request_reinstall(node=node, image=image, by=by)
            elif action == "assign":
                node_update(node=node, by=by, tenant=tenant)
            else:
                node_update(node=node, by=by, tenant=None)
        except ValidationError as exc:
            refused.append((node.hostname, " ".join(exc.messages)))
        except InvalidTransition as exc:
            refused.append((node.hostname, f"it changed meanwhile ({exc})"))
        else:
            done.append(node.hostname)
    return BulkOutcome(done=tuple(done), refused=tuple(refused))
