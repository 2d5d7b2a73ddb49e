"""One module per DHCP daemon, each exposing the same functions (STYLE.md R10):

render(snap) -> {relative path: content}   pure, via provisioning.rendering
validate(snap, files) -> None              runs the real daemon's checker, raises ConfigInvalid
directory(paths) -> str                    where the files go
reload(paths, changed) -> str              tells the running daemon, says what it did
"""

from __future__ import annotations

import importlib


class ConfigInvalid(Exception):
    """The daemon's own checker refused the configuration; ``output`` is what it said."""

    def __init__(self, output: str):
        super().__init__(output)
        self.output = output


class DaemonError(Exception):
    """The running daemon could not be told about the new configuration."""


BACKEND_MODULES = {"dnsmasq": "dnsmasq", "dnsmasq-proxy": "dnsmasq", "kea": "kea"}


def backend_for(name: str):
    return importlib.import_module(f"provisioning.dhcp.{BACKEND_MODULES[name]}")
