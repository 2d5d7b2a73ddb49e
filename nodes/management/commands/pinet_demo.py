"""Create (or top up) the demo site, users, tenants and boards. Safe to run any number of times."""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from nodes.choices import BoardModel, BootMode, DhcpBackend, NodeState
from nodes.discovery import PI_VENDOR_CLASS, Sighting
from nodes.discovery_services import discovery_record
from nodes.models import DiscoveredBoard, Node, Site, Tenant
from nodes.services import node_create, site_create, tenant_create, tenant_member_add

DEMO_SITE = {
    "name": "Demo",
    "slug": "demo",
    "interface": "pinet0",
    "subnet": "192.0.2.0/24",
    "boot_server": "192.0.2.1",
    "gateway": "192.0.2.1",
    "dns_servers": "192.0.2.1",
    "range_start": "192.0.2.100",
    "range_end": "192.0.2.199",
    "dhcp_backend": DhcpBackend.DNSMASQ,
    "discovery_enabled": True,
}

DEMO_TENANTS = [("Acme Robotics", "acme", "alice"), ("Birch Lab", "birch", "bob")]

# hostname, board, MAC (real OUIs per board), serial, last octet, boot mode, tenant slug, state
DEMO_NODES = [
    ("pi3b-01", BoardModel.PI3B, "b8:27:eb:00:00:01", "00000001", 11, BootMode.LOCAL, "acme", NodeState.READY),
    ("pi3bp-01", BoardModel.PI3BPLUS, "b8:27:eb:00:00:02", "00000002", 12, BootMode.LOCAL, None, NodeState.READY),
    ("pi4-01", BoardModel.PI4B, "dc:a6:32:00:00:01", "9ffe0001", 21, BootMode.LOCAL, "acme", NodeState.DEPLOYED),
    ("pi4-02", BoardModel.PI4B, "dc:a6:32:00:00:02", "9ffe0002", 22, BootMode.NETBOOT, "acme", NodeState.DEPLOYED),
    ("pi4-03", BoardModel.PI4B, "dc:a6:32:00:00:03", "9ffe0003", 23, BootMode.LOCAL, "birch", NodeState.DEPLOYED),
    ("pi4-04", BoardModel.PI4B, "dc:a6:32:00:00:04", "9ffe0004", 24, BootMode.NETBOOT, "birch", NodeState.DEPLOYED),
    ("pi4-05", BoardModel.PI4B, "dc:a6:32:00:00:05", "9ffe0005", 25, BootMode.LOCAL, None, NodeState.READY),
    ("cm4-01", BoardModel.CM4, "e4:5f:01:00:00:01", "c4000001", 31, BootMode.NETBOOT, "acme", NodeState.DEPLOYED),
    ("pi5-01", BoardModel.PI5, "d8:3a:dd:00:00:01", "5a5a00000000c501", 41, BootMode.LOCAL, "birch", NodeState.READY),
    ("x86-bios-01", BoardModel.X86_BIOS, "52:54:00:00:00:01", None, 51, BootMode.LOCAL, None, NodeState.READY),
    ("x86-uefi-01", BoardModel.X86_UEFI, "52:54:00:00:00:02", None, 52, BootMode.LOCAL, "acme", NodeState.READY),
    ("arm64-01", BoardModel.ARM64_UEFI, "52:54:00:00:00:03", None, 53, BootMode.LOCAL, None, NodeState.READY),
]

# Boards the demo site's listener has "heard": a Pi 5 waiting for adoption, and a PXE client
# of an architecture pinet does not know (arm32 UEFI).
DEMO_DISCOVERED = [
    Sighting(
        mac="2c:cf:67:00:00:01",
        message_type=1,
        vendor_class=PI_VENDOR_CLASS,
        arch=0,
        client_id="00:52:50:69:35:70:41:d0:00:67:00:00:01:01:c5:00:00",
        board_model=BoardModel.PI5.value,
        revision="00d04170",
        serial="0000c501",
        is_pi=True,
        netboot=True,
    ),
    Sighting(
        mac="52:54:00:00:00:0a",
        message_type=1,
        vendor_class="PXEClient:Arch:00010:UNDI:003016",
        arch=10,
        board_model=BoardModel.UNKNOWN.value,
        netboot=True,
    ),
]


class Command(BaseCommand):
    help = "Create the demo site, an operator (admin), two tenants with a customer each (alice, bob) and boards."

    def add_arguments(self, parser):
        parser.add_argument("--password", help="Password for admin, alice and bob (default: generated once).")

    def handle(self, *args, password: str | None = None, **options):
        password_file = settings.PINET_DATA_DIR / "demo-password"
        given = bool(password)
        if not given:
            if password_file.exists():
                password = password_file.read_text().strip()
            else:
                password = secrets.token_urlsafe(12)
                fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(password + "\n")
        try:
            with transaction.atomic():
                set_for = self._users(password, reset=given)
                site = self._site()
                tenants = self._tenants()
                added = self._nodes(site, tenants)
                self._discovered(site)
        except ValidationError as exc:
            raise CommandError(f"The demo data does not fit the existing database: {exc}") from exc

        self._demo_install(site)
        total = Node.objects.filter(site=site).count()
        self.stdout.write(
            self.style.SUCCESS(f"Demo site '{site.slug}' ({site.subnet}): {added} boards added, {total} in total.")
        )
        if set_for:
            self.stdout.write(f"Password of {', '.join(set_for)}: {password}")
            self.stdout.write("admin is the operator; alice is in Acme Robotics, bob in Birch Lab.")
        else:
            self.stdout.write(
                "Users admin, alice and bob already existed; their passwords are unchanged "
                "(rerun with --password to set one)."
            )

    def _demo_install(self, site: Site) -> None:
        """One Pi 4 reinstalling a small demo image, imported for real, with a running job."""
        from images.demo import demo_image_ready
        from provisioning.models import InstallJob
        from provisioning.services import install_job_event, node_request_reinstall

        node = Node.objects.filter(site=site, hostname="pi4-05").first()
        if node is None or InstallJob.objects.filter(node=node).exists():
            return
        image, why_not = demo_image_ready(data_dir=settings.PINET_DATA_DIR)
        if image is None:
            self.stdout.write(f"Skipped the demo install ({why_not}).")
            return
        with transaction.atomic():
            job = node_request_reinstall(node=node, image=image, by=None)
            install_job_event(job=job, stage="writing", percent=45, message="demo: half of the image written")
        self.stdout.write(f"pi4-05 is reinstalling {image} (job {job.pk}, 45 %).")

    def _users(self, password: str, *, reset: bool) -> list[str]:
        User = get_user_model()
        created = []
        for username, staff in (("admin", True), ("alice", False), ("bob", False)):
            user, new = User.objects.get_or_create(
                username=username,
                defaults={"is_staff": staff, "is_superuser": staff, "email": f"{username}@example.com"},
            )
            if new or reset:
                user.set_password(password)
                user.save(update_fields=["password"])
            if new:
                created.append(username)
        return created

    def _site(self) -> Site:
        site = Site.objects.filter(slug=DEMO_SITE["slug"]).first()
        return site or site_create(by=None, **DEMO_SITE)

    def _tenants(self) -> dict[str, Tenant]:
        User = get_user_model()
        tenants = {}
        for name, slug, username in DEMO_TENANTS:
            tenant = Tenant.objects.filter(slug=slug).first() or tenant_create(by=None, name=name, slug=slug)
            tenant_member_add(tenant=tenant, user=User.objects.get(username=username), by=None)
            tenants[slug] = tenant
        return tenants

    def _nodes(self, site: Site, tenants: dict[str, Tenant]) -> int:
        existing = set(Node.objects.values_list("mac", flat=True))
        added = 0
        network = site.network
        for hostname, board, mac, serial, octet, mode, tenant, state in DEMO_NODES:
            if mac in existing:
                continue  # leave boards the operator has since changed alone
            node_create(
                by=None,
                site=site,
                hostname=hostname,
                board_model=board,
                mac=mac,
                serial=serial,
                ip=str(network.network_address + octet) if octet else None,
                boot_mode=mode,
                tenant=tenants.get(tenant),
                state=state,
            )
            added += 1
        return added

    def _discovered(self, site: Site) -> None:
        for sighting in DEMO_DISCOVERED:
            known = DiscoveredBoard.objects.filter(mac=sighting.mac).exists()
            if not known and not Node.objects.filter(mac=sighting.mac).exists():
                discovery_record(site=site, sighting=sighting, count=3)
