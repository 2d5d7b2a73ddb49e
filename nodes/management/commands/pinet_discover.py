"""Listen for boards asking a site for a network boot and record the unknown ones (one
process per site, beside the site's DHCP server; see nodes/discovery_listener.py)."""

from __future__ import annotations

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from nodes.discovery_listener import DiscoveryListener, PacketSource
from nodes.models import Site

log = logging.getLogger("pinet.discovery")


class Command(BaseCommand):
    help = "Record boards that ask a site for a network boot (needs CAP_NET_RAW). Stops on SIGTERM/SIGINT."

    def add_arguments(self, parser):
        parser.add_argument("--site", required=True, help="The site's slug.")
        parser.add_argument(
            "--interface", help="Interface to listen on (default: the site's); 'any' hears every interface."
        )
        parser.add_argument(
            "--write-interval",
            type=float,
            default=settings.PINET_DISCOVERY_WRITE_INTERVAL,
            help="Seconds between two database writes about one MAC (PINET_DISCOVERY_WRITE_INTERVAL).",
        )
        parser.add_argument(
            "--writes-per-second",
            type=int,
            default=settings.PINET_DISCOVERY_WRITES_PER_SECOND,
            help="Database writes per second in all (PINET_DISCOVERY_WRITES_PER_SECOND).",
        )

    def handle(self, *args, site: str, interface: str | None, write_interval: float, writes_per_second: int, **opts):
        row = Site.objects.filter(slug=site).first()
        if row is None:
            raise CommandError(
                f"No site {site!r}; the slugs are: {', '.join(Site.objects.values_list('slug', flat=True))}."
            )
        if write_interval < 0 or writes_per_second < 1:
            raise CommandError("--write-interval must be 0 or more and --writes-per-second at least 1.")
        interface = interface or row.interface
        try:
            source = PacketSource(None if interface == "any" else interface)
        except PermissionError:
            raise CommandError(
                "Listening needs CAP_NET_RAW: run as root or with AmbientCapabilities=CAP_NET_RAW."
            ) from None
        except OSError as exc:
            raise CommandError(f"Cannot listen on {interface}: {exc}") from None
        listener = DiscoveryListener(
            site=row,
            write_interval=write_interval,
            writes_per_second=writes_per_second,
            memory=settings.PINET_DISCOVERY_MEMORY,
            refresh=settings.PINET_DISCOVERY_REFRESH,
        )
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        log.info("listening on %s for site %s (discovery %s)", interface, row.slug, "on" if listener.enabled else "off")
        try:
            listener.run(source, stop)
        finally:
            source.close()
