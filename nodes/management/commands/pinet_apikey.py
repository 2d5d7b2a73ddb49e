"""Create, list and revoke API keys from set-up scripts (the key is printed once)."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from nodes.apikeys import api_key_create, api_key_revoke
from nodes.models import ApiKey, Tenant


class Command(BaseCommand):
    help = (
        "pinet_apikey create --name N --scope billing|operator|tenant:<slug> [--expires-days D] | list | revoke PREFIX"
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="verb", required=True)
        create = sub.add_parser("create")
        create.add_argument("--name", required=True)
        create.add_argument("--scope", required=True, help="billing, operator or tenant:<slug>")
        create.add_argument("--expires-days", type=int)
        sub.add_parser("list")
        revoke = sub.add_parser("revoke")
        revoke.add_argument("prefix")

    def handle(self, *args, verb, **options):
        if verb == "list":
            for key in ApiKey.objects.select_related("tenant"):
                state = (
                    "revoked"
                    if key.revoked_at
                    else "expired"
                    if key.expires_at and key.expires_at < timezone.now()
                    else "active"
                )
                tenant = f" {key.tenant.slug}" if key.tenant else ""
                self.stdout.write(f"{key.prefix}  {key.scope}{tenant}  {state}  {key.name}")
            return
        if verb == "revoke":
            key = ApiKey.objects.filter(prefix=options["prefix"]).first()
            if key is None:
                raise CommandError(f"No API key with prefix {options['prefix']!r}.")
            api_key_revoke(key=key)
            self.stdout.write(f"revoked {key}")
            return
        scope, _, slug = options["scope"].partition(":")
        tenant = None
        if scope == "tenant":
            tenant = Tenant.objects.filter(slug=slug).first()
            if tenant is None:
                raise CommandError(f"No tenant {slug!r}.")
        expires = timezone.now() + timedelta(days=options["expires_days"]) if options["expires_days"] else None
        try:
            key, row = api_key_create(name=options["name"], scope=scope, tenant=tenant, expires_at=expires)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(key)
        self.stderr.write(f"created {row}; the key above is shown only once")
