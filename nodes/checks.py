"""Deployment checks for nodes (ids pinet.nodes.*)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Warning, register


@register("pinet")
def check_power_key(app_configs=None, **kwargs):
    if settings.EMBEDDED or settings.PINET_POWER_KEYS:
        return []
    return [
        Warning(
            "PINET_POWER_KEY is not set: power credentials (SNMP communities and keys, plug passwords and "
            "tokens) cannot be stored, so only the manual driver and webhooks without credentials work.",
            hint="Generate a key with: python3 -c 'import base64, os; "
            "print(base64.urlsafe_b64encode(os.urandom(32)).decode())' and set PINET_POWER_KEY (or "
            "PINET_POWER_KEY_FILE) for the web server and every worker.",
            id="pinet.nodes.W001",
        )
    ]
