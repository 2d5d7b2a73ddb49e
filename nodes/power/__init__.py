"""Power control: a driver per kind of device (base.py), credentials encrypted at rest
(crypto.py), and the services that queue, rate-limit, audit and run power actions."""

from __future__ import annotations

from importlib import import_module

from .base import Driver

_DRIVERS = {
    "manual": "nodes.power.manual.ManualDriver",
    "snmp-poe": "nodes.power.snmp.SnmpPoeDriver",
    "webhook": "nodes.power.webhook.WebhookDriver",
}


def driver_class(name: str) -> type[Driver]:
    """The driver class for a PowerDriver value (imported on first use: pysnmp is only
    loaded where SNMP is used)."""
    module, _, cls = _DRIVERS[name].rpartition(".")
    return getattr(import_module(module), cls)
