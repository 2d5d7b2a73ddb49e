"""The lab in pinet's database: the site "lab", the images and installers its machines
install and boot, and the environment of the pinet processes that serve it."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings
from django.db import connection

from .layout import (
    BOOT_URL_BASE,
    BRIDGE,
    INSTALLER_NAME,
    LAB_SLUG,
    LEASE_SECONDS,
    RANGE,
    SERVER_IP,
    SUBNET,
    X86_INSTALLER_NAME,
    LabError,
)


def lab_site(backend: str):
    """The site "lab" (created, or brought back to the lab's settings); refuses a site of that
    slug that is not the lab's."""
    from nodes.models import Site
    from nodes.services import site_create, site_update

    wanted = {
        "boot_url_base": BOOT_URL_BASE,
        "discovery_enabled": True,
        "dhcp_backend": backend,
        "range_start": RANGE[0],
        "range_end": RANGE[1],
    }
    site = Site.objects.filter(slug=LAB_SLUG).first()
    if site is None:
        return site_create(
            by=None,
            name="pinet lab (simulated boards)",
            slug=LAB_SLUG,
            interface=BRIDGE,
            subnet=SUBNET,
            boot_server=SERVER_IP,
            lease_time=LEASE_SECONDS,
            **wanted,
        )
    if (site.subnet, site.interface, site.boot_server) != (SUBNET, BRIDGE, SERVER_IP):
        raise LabError(
            f"A site with the slug {LAB_SLUG!r} exists and is not the lab's (subnet {site.subnet}, interface "
            f"{site.interface}): rename its slug, or run the lab with another database."
        )
    changes = {k: v for k, v in wanted.items() if str(getattr(site, k) or "") != str(v)}
    return site_update(site=site, by=None, **changes) if changes else site


def lab_images(echo: Callable[[str], None], *, x86: bool = False):
    """(the OS image to install and netboot, its installer) for the Pi boards, or with ``x86``
    for the QEMU machine; made if missing."""
    from images.demo import demo_image_ready
    from images.models import OSImage

    image, why_not = demo_image_ready(data_dir=settings.PINET_DATA_DIR, x86=x86)
    if image is None:
        raise LabError(f"The lab needs the demo image and could not make it: {why_not}")
    arch = "amd64" if x86 else "arm64"
    installer = (
        OSImage.objects.filter(kind="installer", state="ready", arch=arch, boot_path__gt="")
        .order_by("-version")
        .first()
    )
    if installer is None:
        name = X86_INSTALLER_NAME if x86 else INSTALLER_NAME
        # A Pi's installer takes kernel8.img and firmware from the image; a PC's, this host's kernel.
        options = {"arch": arch, "out": Path(settings.PINET_IMAGE_ROOT) / name, "register": name}
        if not x86:
            options["from_image"] = image.name
        echo(f"Building {name} for the lab (pinet_build_installer)…")
        _build_installer(options)
        installer = OSImage.objects.filter(name=name, state="ready").order_by("-version").first()
    return image, installer


def _build_installer(options: dict) -> None:
    from django.core.management import call_command

    try:
        call_command("pinet_build_installer", stdout=io.StringIO(), **options)
    except Exception as exc:
        raise LabError(f"Building the lab's installer failed: {exc}") from exc


def child_endpoints() -> tuple[str, str, list[str]]:
    """(DATABASE_URL, CELERY_BROKER_URL) as pinet's processes inside the server namespace reach
    them, and the relay mappings (PORT=HOST:PORT) that make TCP ones reachable."""
    db = connection.settings_dict
    relay: list[str] = []
    if db["ENGINE"].endswith("sqlite3"):
        database = f"sqlite:///{db['NAME']}"
    else:
        auth = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else "")
        host, port = db.get("HOST") or "", int(db.get("PORT") or 5432)
        if host.startswith("/"):
            # A Unix socket: a path, which no network namespace hides.
            database = f"postgres://{auth}@{quote(host, safe='')}:{port}/{quote(db['NAME'])}"
        else:
            relay.append(f"{port}={host or '127.0.0.1'}:{port}")
            database = f"postgres://{auth}@127.0.0.1:{port}/{quote(db['NAME'])}"
    broker = settings.CELERY_BROKER_URL
    if broker.startswith("redis"):
        parts = urlsplit(broker)
        port = parts.port or 6379
        if any(m.startswith(f"{port}=") for m in relay):
            raise LabError(f"The database and the broker both use port {port}; the lab's relay cannot carry both.")
        relay.append(f"{port}={parts.hostname or '127.0.0.1'}:{port}")
        netloc = parts.netloc.rsplit("@", 1)
        hostport = f"127.0.0.1:{port}"
        broker = urlunsplit(parts._replace(netloc=f"{netloc[0]}@{hostport}" if len(netloc) == 2 else hostport))
    elif not os.environ.get("CELERY_BROKER_URL"):
        broker = ""  # the embedded file-system broker, found from PINET_DATA_DIR like the parent's
    return database, broker, relay


def child_env(database: str, broker: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY_FILE", "DJANGO_SETTINGS_MODULE")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "pinet.settings",
            "PINET_ENV": settings.PINET_ENV,
            "PINET_DATA_DIR": str(settings.PINET_DATA_DIR),
            "PINET_CONFIG_ROOT": str(settings.PINET_CONFIG_ROOT),
            "PINET_TFTP_ROOT": str(settings.PINET_TFTP_ROOT),
            "PINET_NFS_ROOT": str(settings.PINET_NFS_ROOT),
            "PINET_IMAGE_ROOT": str(settings.PINET_IMAGE_ROOT),
            "DATABASE_URL": database,
            "CELERY_BROKER_URL": broker,
            # Boot tokens are derived from the secret key: every process must share it.
            "SECRET_KEY": settings.SECRET_KEY,
            "ALLOWED_HOSTS": ",".join([*settings.ALLOWED_HOSTS, SERVER_IP]),
            # The lab's dnsmasq runs under its restart loop, and the lab has no NFS server.
            "PINET_DNSMASQ_RESTART": "",
            "PINET_EXPORTFS_RELOAD": "",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env
