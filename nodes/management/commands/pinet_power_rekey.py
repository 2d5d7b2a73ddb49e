"""Re-encrypt every node's power credentials with the first key of PINET_POWER_KEY.

Rotation: put the new key in front (PINET_POWER_KEY=new,old), restart, run this, then drop
the old key. --check only reports the nodes whose credentials no key can decrypt."""

from django.core.management.base import BaseCommand, CommandError

from nodes.models import Node
from nodes.power.base import PowerError
from nodes.power.crypto import power_secrets_decrypt, power_secrets_rotate


class Command(BaseCommand):
    help = "Re-encrypt stored power credentials with the first PINET_POWER_KEY (after a key rotation)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Only report credentials that cannot be read.")

    def handle(self, *args, check: bool, **options):
        done, unreadable = 0, []
        for node in Node.objects.exclude(power_secrets="").only("pk", "hostname", "power_secrets").order_by("pk"):
            try:
                power_secrets_decrypt(node_id=node.pk, token=node.power_secrets)
                if not check:
                    token = power_secrets_rotate(token=node.power_secrets)
                    # Compare-and-swap: settings saved meanwhile are already under the new key.
                    done += Node.objects.filter(pk=node.pk, power_secrets=node.power_secrets).update(
                        power_secrets=token
                    )
            except PowerError as exc:
                unreadable.append(f"{node.hostname} (id {node.pk}): {exc}")
        if not check:
            self.stdout.write(f"Re-encrypted the power credentials of {done} nodes with the first key.")
        for line in unreadable:
            self.stderr.write(line)
        if unreadable:
            raise CommandError(
                f"{len(unreadable)} nodes' power credentials cannot be decrypted with any key in PINET_POWER_KEY; "
                "put the old key back after the new one, or enter their credentials again."
            )
        if check:
            self.stdout.write("Every stored power credential can be decrypted.")
