"""The firmware-like DHCP/TFTP client moved to provisioning/lab/probe.py (pinet_lab's simulated
boards use it too); tests keep importing it from here."""

from provisioning.lab.probe import *  # noqa: F403
