"""Reads for power control. Every list starts from visible_to(user)."""

from __future__ import annotations

from django.db.models import QuerySet

from nodes.models import Node, PowerAction

from . import driver_class
from .base import PowerError
from .crypto import power_secrets_decrypt


def power_action_list(*, user) -> QuerySet[PowerAction]:
    return PowerAction.objects.visible_to(user).select_related("node", "tenant")


def node_power_settings(*, node: Node) -> dict:
    """The driver, its parameters and which secrets are stored ("set" / "not set"), never
    their values: what the power settings form and the API show."""
    fields = driver_class(node.power_driver).secret_fields
    try:
        stored = power_secrets_decrypt(node_id=node.pk, token=node.power_secrets)
    except PowerError:
        return {
            "driver": node.power_driver,
            "params": node.power_params,
            "secrets": dict.fromkeys(fields, "unreadable"),
        }
    return {
        "driver": node.power_driver,
        "params": node.power_params,
        "secrets": {name: "set" if name in stored else "not set" for name in fields},
    }


def node_power_state(*, node: Node) -> PowerAction | None:
    """The latest finished action that left a known power state (for the dashboard)."""
    return node.power_actions.exclude(power_state="").filter(finished_at__isnull=False).order_by("-finished_at").first()
