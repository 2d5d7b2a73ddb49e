"""Deployment checks for the data directories (ids pinet.E001, pinet.E002, pinet.W003)."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.checks import Error, Warning, register


@register("pinet")
def check_data_directories(app_configs=None, **kwargs):
    problems = []
    for name, path in settings.PINET_DIRECTORIES.items():
        if not path.is_dir():
            problems.append(
                Error(
                    f"{name} ({path}) does not exist.",
                    hint=f"Create it (mkdir -p {path}) and make it writable by the pinet user, or set {name}.",
                    id="pinet.E001",
                )
            )
        elif not os.access(path, os.W_OK | os.X_OK):
            problems.append(
                Error(
                    f"{name} ({path}) is not writable by this user.",
                    hint=f"chown it to the user pinet runs as, or set {name} to a writable directory.",
                    id="pinet.E002",
                )
            )
    return problems


@register("pinet", deploy=True)
def check_boot_url(app_configs=None, **kwargs):
    if settings.PINET_BOOT_URL_BASE.startswith("http://"):
        return [
            Warning(
                f"PINET_BOOT_URL_BASE ({settings.PINET_BOOT_URL_BASE}) is plain http: boot tokens "
                "travel in clear text.",
                hint="Serve pinet over https and set PINET_BOOT_URL_BASE=https://….",
                id="pinet.W003",
            )
        ]
    return []
