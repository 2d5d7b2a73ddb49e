"""Write a site's whole boot configuration into a directory that runs as it is."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from nodes.choices import DhcpBackend
from nodes.models import Site
from provisioning.dhcp import ConfigInvalid
from provisioning.rendering import ConfigRenderError
from provisioning.services import site_config_render


class Command(BaseCommand):
    help = (
        "Render, validate and write a site's configuration into DIR: DIR/dnsmasq/dnsmasq.conf (+ hosts.d, opts.d), "
        "DIR/kea/kea-dhcp4.json, DIR/tftp/, DIR/exports/, every path inside pointing into DIR. "
        "Then `dnsmasq -k -C DIR/dnsmasq/dnsmasq.conf` or `kea-dhcp4 -c DIR/kea/kea-dhcp4.json` serves the site."
    )

    def add_arguments(self, parser):
        parser.add_argument("--site", required=True, help="Site slug.")
        parser.add_argument("--out", required=True, type=Path, help="Output directory (created if missing).")
        parser.add_argument("--backend", choices=DhcpBackend.values, help="Render for this backend instead.")

    def handle(self, *args, site: str, out: Path, backend: str | None, **options):
        found = Site.objects.filter(slug=site).first()
        if found is None:
            known = ", ".join(Site.objects.values_list("slug", flat=True)) or "none yet"
            raise CommandError(f"There is no site {site!r} (sites: {known}).")
        out = out.resolve()
        try:
            snap, written = site_config_render(site=found, out_dir=out, backend=backend)
        except ConfigInvalid as exc:
            raise CommandError(f"The daemon refused the configuration:\n{exc.output}") from exc
        except ConfigRenderError as exc:
            raise CommandError(str(exc)) from exc
        for name in sorted(written):
            if "/hosts.d/" not in name and "/opts.d/" not in name:
                self.stdout.write(f"wrote {out / name}")
        hosts = sum(1 for n in written if "/hosts.d/" in n)
        if hosts:
            self.stdout.write(f"wrote {hosts} host files in {out / 'dnsmasq' / 'hosts.d'}")
        for note in snap.notes:
            self.stdout.write(self.style.WARNING(f"note: {note}"))
        self.stdout.write(self.style.SUCCESS(f"{snap.slug}: {len(snap.hosts)} nodes, backend {snap.backend}, valid."))
