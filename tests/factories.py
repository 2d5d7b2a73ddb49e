"""Deterministic builders for tests: the same call always gives the same data."""

from __future__ import annotations

import itertools

from images.models import OSImage
from nodes.choices import BoardModel
from nodes.models import Node, Site, Tenant

_counter = itertools.count(1)


def make_site(**overrides) -> Site:
    fields = {
        "name": "Lab",
        "slug": "lab",
        "interface": "pinet0",
        "subnet": "192.0.2.0/24",
        "boot_server": "192.0.2.1",
        "range_start": "192.0.2.100",
        "range_end": "192.0.2.199",
    }
    fields.update(overrides)
    return Site.objects.create(**fields)


def make_tenant(slug: str = "acme", **overrides) -> Tenant:
    return Tenant.objects.create(**{"name": slug.title(), "slug": slug, **overrides})


def make_node(*, site: Site, n: int | None = None, **overrides) -> Node:
    """Node number n gets MAC dc:a6:32:00:00:<n>, host name pi-<n> and address .<10+n>."""
    n = next(_counter) if n is None else n
    fields = {
        "site": site,
        "hostname": f"pi-{n}",
        "mac": f"dc:a6:32:00:{n // 256:02x}:{n % 256:02x}",
        "board_model": BoardModel.PI4B,
        "ip": str(site.network.network_address + 10 + n) if n < 80 else None,
    }
    fields.update(overrides)
    return Node.objects.create(**fields)


def make_image(**overrides) -> OSImage:
    fields = {"name": "raspios-lite", "arch": "arm64", "source": "https://images.invalid/raspios.img.xz"}
    fields.update(overrides)
    return OSImage.objects.create(**fields)


def make_ready_image(directory, content: bytes = b"image" * 1000, **overrides) -> OSImage:
    """A ready OS image whose install artefact is ``content`` (not real zstd: enough for the
    services and boot endpoints, which stream it as it is), in ``directory``."""
    import hashlib

    artefact = directory / "disk.img.zst"
    artefact.write_bytes(content)
    fields = {
        "name": "raspios",
        "arch": "arm64",
        "source": "/x",
        "state": "ready",
        "artefact_path": str(artefact),
        "artefact_sha256": hashlib.sha256(content).hexdigest(),
        "artefact_size": len(content),
        "image_size": 4 * len(content),
    }
    fields.update(overrides)
    return OSImage.objects.create(**fields)
