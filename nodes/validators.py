"""Parsing and validation of node identity: one place for the rules the forms, the API,
the services and the database constraints all share."""

from __future__ import annotations

import ipaddress
import re

from django.core.exceptions import ValidationError

MAC_RE = r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"
HOSTNAME_RE = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
# Pi 3/4 serials are 32 bits; the Pi 5 reports 64. The TFTP prefix uses the low 32 bits.
SERIAL_RE = r"^([0-9a-f]{8}|[0-9a-f]{16})$"
SLUG_RE = r"^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?$"
# Linux IFNAMSIZ is 16 including the NUL; no '/', ':' or white space.
INTERFACE_RE = r"^[A-Za-z0-9_.-]{1,15}$"
# A site's boot URL base: scheme, host[:port], an optional path; no query, fragment or trailing slash.
BOOT_URL_BASE_RE = r"^https?://[^/?#\s]+(/[^?#\s]*[^/?#\s])?$"

_mac_separators = re.compile(r"[-:.\s]")


def normalize_mac(value: str) -> str:
    """Accept dc:a6:32:01:36:c2, DC-A6-32-01-36-C2, dca6.3201.36c2 or dca6320136c2."""
    digits = _mac_separators.sub("", str(value)).lower()
    if not re.fullmatch(r"[0-9a-f]{12}", digits):
        raise ValidationError(
            "%(value)s is not a MAC address; write six hex pairs, e.g. dc:a6:32:01:36:c2.",
            code="invalid_mac",
            params={"value": value},
        )
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def normalize_serial(value: str | None) -> str | None:
    """A Pi serial as printed by the firmware (hex, 8 or 16 digits); '0x' and case are ignored."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip().lower().removeprefix("0x")
    if not re.fullmatch(SERIAL_RE, text):
        raise ValidationError(
            "%(value)s is not a Raspberry Pi serial: expected 8 or 16 hex digits, e.g. 9ffefdef.",
            code="invalid_serial",
            params={"value": value},
        )
    return text


def validate_hostname(value: str) -> None:
    if not re.fullmatch(HOSTNAME_RE, value or ""):
        raise ValidationError(
            "%(value)s is not a valid host name: use 1-63 lower-case letters, digits and "
            "hyphens, not starting or ending with a hyphen (RFC 1123).",
            code="invalid_hostname",
            params={"value": value},
        )


def normalize_boot_url_base(value: str) -> str:
    """A site's boot URL base: an http(s) URL with a host, no query or fragment, stored
    without a trailing slash (paths are appended to it). Blank stays blank."""
    from urllib.parse import urlsplit

    text = (value or "").strip().rstrip("/")
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValidationError(
            "%(value)s is not a boot URL base: an http(s) URL with a host and no query, "
            "e.g. https://pinet.example.net or http://192.0.2.1:8000.",
            code="invalid_boot_url_base",
            params={"value": value},
        )
    return text


def validate_interface(value: str) -> None:
    if not re.fullmatch(INTERFACE_RE, value or ""):
        raise ValidationError(
            "%(value)s is not a network interface name: 1-15 letters, digits, '.', '_' or '-'.",
            code="invalid_interface",
            params={"value": value},
        )


def parse_ipv4_network(value: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.IPv4Network(str(value).strip(), strict=True)
    except ValueError as exc:
        raise ValidationError(
            "%(value)s is not an IPv4 subnet in CIDR form such as 192.0.2.0/24 (%(reason)s).",
            code="invalid_subnet",
            params={"value": value, "reason": exc},
        ) from None
    if network.prefixlen > 30:
        raise ValidationError(
            "%(value)s is too small to hold a boot server and nodes: use /30 or larger.",
            code="subnet_too_small",
            params={"value": value},
        )
    return network


def parse_ipv4_list(value: str) -> list[ipaddress.IPv4Address]:
    addresses = []
    for item in (part.strip() for part in str(value or "").split(",")):
        if not item:
            continue
        try:
            addresses.append(ipaddress.IPv4Address(item))
        except ValueError:
            raise ValidationError(
                "%(item)s is not an IPv4 address; separate several with commas.",
                code="invalid_ip_list",
                params={"item": item},
            ) from None
    return addresses
