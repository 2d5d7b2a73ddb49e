from django.db import models
from django.utils.translation import gettext_lazy as _


class BoardModel(models.TextChoices):
    PI3B = "pi3b", _("Raspberry Pi 3 Model B")
    PI3BPLUS = "pi3b+", _("Raspberry Pi 3 Model B+")
    PI4B = "pi4b", _("Raspberry Pi 4 Model B")
    CM4 = "cm4", _("Compute Module 4")
    PI5 = "pi5", _("Raspberry Pi 5")
    X86_BIOS = "x86-bios", _("x86 PC (BIOS PXE)")
    X86_UEFI = "x86-uefi", _("x86-64 PC (UEFI)")
    ARM64_UEFI = "arm64-uefi", _("arm64 server (UEFI)")
    UNKNOWN = "unknown", _("Unknown")


RASPBERRY_PI_MODELS = frozenset({BoardModel.PI3B, BoardModel.PI3BPLUS, BoardModel.PI4B, BoardModel.CM4, BoardModel.PI5})


class BootMode(models.TextChoices):
    LOCAL = "local", _("Local (SD card / disk)")
    NETBOOT = "netboot", _("Network boot (NFS root)")
    INSTALL = "install", _("Install to SD card / disk")


# A board pinet has seen but nobody adopted is a DiscoveredBoard, not a Node: a node always
# has a host name, a site configuration and an owner's decision behind it. (Nodes had a
# "discovered" state before discovery existed; migration 0006 moved such rows to DiscoveredBoard.)
class NodeState(models.TextChoices):
    READY = "ready", _("Ready")
    INSTALLING = "installing", _("Installing")
    DEPLOYED = "deployed", _("Deployed")
    FAILED = "failed", _("Failed")
    SUSPENDED = "suspended", _("Suspended")


_S = NodeState
# A suspended node (the customer stopped paying) can only come back to ready; an
# installing node leaves that state only through its job ending.
NODE_TRANSITIONS: dict[str, frozenset[str]] = {
    _S.READY: frozenset({_S.INSTALLING, _S.DEPLOYED, _S.SUSPENDED}),
    _S.INSTALLING: frozenset({_S.DEPLOYED, _S.FAILED, _S.READY}),
    _S.DEPLOYED: frozenset({_S.INSTALLING, _S.READY, _S.SUSPENDED}),
    _S.FAILED: frozenset({_S.INSTALLING, _S.READY, _S.SUSPENDED}),
    _S.SUSPENDED: frozenset({_S.READY}),
}


class DhcpBackend(models.TextChoices):
    DNSMASQ = "dnsmasq", _("dnsmasq (full DHCP)")
    DNSMASQ_PROXY = "dnsmasq-proxy", _("dnsmasq (proxy DHCP beside an existing server)")
    KEA = "kea", _("ISC Kea DHCPv4")


class PowerDriver(models.TextChoices):
    MANUAL = "manual", _("Manual (a person power-cycles the board)")
    SNMP_POE = "snmp-poe", _("PoE switch port (SNMP)")
    WEBHOOK = "webhook", _("HTTP webhook (smart plug, relay board)")


class DiscoveryStatus(models.TextChoices):
    NEW = "new", _("New")
    IGNORED = "ignored", _("Ignored")
    ADOPTED = "adopted", _("Adopted")


_D = DiscoveryStatus
# Ignoring is a blocklist an operator can undo; adoption is final (deleting the node deletes
# the record, so the board is discovered afresh if it asks again).
DISCOVERY_TRANSITIONS: dict[str, frozenset[str]] = {
    _D.NEW: frozenset({_D.IGNORED, _D.ADOPTED}),
    _D.IGNORED: frozenset({_D.NEW, _D.ADOPTED}),
    _D.ADOPTED: frozenset(),
}


class PowerActionKind(models.TextChoices):
    ON = "on", _("Power on")
    OFF = "off", _("Power off")
    CYCLE = "cycle", _("Power-cycle")
    STATUS = "status", _("Read power state")


# Actions that change what the board gets: these are rate-limited, a status read is not.
POWER_CHANGING = frozenset({PowerActionKind.ON, PowerActionKind.OFF, PowerActionKind.CYCLE})


class PowerActionStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    MANUAL = "manual", _("Left to a person (manual driver)")


_P = PowerActionStatus
POWER_ACTION_ACTIVE = frozenset({_P.QUEUED, _P.RUNNING})
# A manual action is born finished: nobody runs it, a person is told to. A queued action can
# fail without running (its credentials cannot be read, its site's config never landed).
POWER_ACTION_TRANSITIONS: dict[str, frozenset[str]] = {
    _P.QUEUED: frozenset({_P.RUNNING, _P.FAILED}),
    _P.RUNNING: frozenset({_P.SUCCEEDED, _P.FAILED}),
    _P.SUCCEEDED: frozenset(),
    _P.FAILED: frozenset(),
    _P.MANUAL: frozenset(),
}


class PowerState(models.TextChoices):
    ON = "on", _("On")
    OFF = "off", _("Off")
    UNKNOWN = "unknown", _("Unknown")
