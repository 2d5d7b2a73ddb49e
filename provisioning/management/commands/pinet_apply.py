"""Render, validate, apply and reload a site's configuration in this process (no worker needed)."""

from django.core.management.base import BaseCommand, CommandError

from nodes.models import Site
from provisioning.dhcp import DaemonError
from provisioning.rendering import ConfigRenderError
from provisioning.services import site_config_apply


class Command(BaseCommand):
    help = "Apply a site's DHCP/TFTP/NFS configuration now and print the revision and what changed."

    def add_arguments(self, parser):
        parser.add_argument("--site", required=True, help="Site slug.")

    def handle(self, *args, site: str, **options):
        found = Site.objects.filter(slug=site).first()
        if found is None:
            known = ", ".join(Site.objects.values_list("slug", flat=True)) or "none yet"
            raise CommandError(f"There is no site {site!r} (sites: {known}).")
        try:
            result = site_config_apply(site=found)
        except (ConfigRenderError, DaemonError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(result.summary())
        if result.status == "rejected":
            raise CommandError("The configuration was rejected; the last good one stays live.")
