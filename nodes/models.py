from __future__ import annotations

import ipaddress
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from . import validators
from .choices import (
    BoardModel,
    BootMode,
    DhcpBackend,
    DiscoveryStatus,
    NodeState,
    PowerActionKind,
    PowerActionStatus,
    PowerDriver,
    PowerState,
)


class _NormalizedCharField(models.CharField):
    """A CharField that stores one canonical spelling, so lookups and uniqueness agree."""

    @staticmethod
    def normalize(value: str):
        return value

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None if self.null else ""
        return self.normalize(value)

    def get_prep_value(self, value):
        # Field's, not CharField's: that one calls to_python, which raises on bad input.
        value = models.Field.get_prep_value(self, value)
        if value in (None, ""):
            return None if self.null else value
        try:
            return self.normalize(str(value))
        except ValidationError:
            # Leave it as it is: the check constraint rejects it with the field named.
            return value


class MACAddressField(_NormalizedCharField):
    normalize = staticmethod(validators.normalize_mac)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 17)
        super().__init__(*args, **kwargs)


class PiSerialField(_NormalizedCharField):
    normalize = staticmethod(validators.normalize_serial)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 16)
        super().__init__(*args, **kwargs)


class HostnameField(_NormalizedCharField):
    normalize = staticmethod(lambda value: str(value).strip().lower())

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 63)
        super().__init__(*args, **kwargs)


def _is_ipv4(value) -> bool:
    try:
        ipaddress.IPv4Address(str(value))
    except ValueError:
        return False
    return True


def _choices_check(field: str, choices: type[models.TextChoices], name: str) -> models.CheckConstraint:
    return models.CheckConstraint(condition=Q(**{f"{field}__in": choices.values}), name=name)


def tenant_scoped(queryset: models.QuerySet, user, tenant: str) -> models.QuerySet:
    """The one rule of every visible_to(user): nothing for an anonymous or inactive user,
    everything for an operator, else the rows whose tenant (reached by the lookup path
    ``tenant``; "" for tenants themselves) is one of the user's, or of a tenant API key's."""
    if not (user and user.is_authenticated and user.is_active):
        return queryset.none()
    if user.is_staff:
        return queryset
    ids = getattr(user, "pinet_tenant_ids", None)
    if ids is not None:
        return queryset.filter(**{f"{tenant}_id__in" if tenant else "pk__in": ids})
    return queryset.filter(**{f"{tenant}__memberships__user" if tenant else "memberships__user": user})


class SiteQuerySet(models.QuerySet):
    def visible_to(self, user) -> SiteQuerySet:
        """Operators see every site; a customer sees the sites their tenants' boards are in."""
        scoped = tenant_scoped(self, user, "nodes__tenant")
        return scoped if scoped is self else scoped.distinct()


class Site(models.Model):
    """A boot network: one DHCP/TFTP/NFS server (the boot server) and the subnet it serves."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True, help_text="Used in queue names: site.<slug>.")
    boot_server = models.GenericIPAddressField(
        protocol="IPv4", help_text="Address of the DHCP/TFTP server booting nodes talk to."
    )
    interface = models.CharField(
        max_length=15,
        validators=[validators.validate_interface],
        help_text="Interface on the boot server that faces the nodes.",
    )
    subnet = models.CharField(max_length=18, help_text="CIDR, e.g. 192.0.2.0/24.")
    gateway = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True)
    dns_servers = models.CharField(max_length=255, blank=True, help_text="Comma-separated IPv4 addresses.")
    range_start = models.GenericIPAddressField(
        protocol="IPv4", null=True, blank=True, help_text="First address of the dynamic DHCP range."
    )
    range_end = models.GenericIPAddressField(
        protocol="IPv4", null=True, blank=True, help_text="Last address of the dynamic DHCP range."
    )
    dhcp_backend = models.CharField(max_length=16, choices=DhcpBackend.choices, default=DhcpBackend.DNSMASQ)
    nfs_server = models.GenericIPAddressField(
        protocol="IPv4", null=True, blank=True, help_text="NFS server for diskless roots; blank = the boot server."
    )
    discovery_enabled = models.BooleanField(
        default=False, help_text="Record unknown boards that ask for a boot as discovered nodes."
    )
    relay_addresses = models.CharField(
        max_length=255,
        blank=True,
        help_text="Comma-separated DHCP relay (giaddr) addresses when the subnet is reached through relays.",
    )
    dns_domain = models.CharField(
        max_length=253, blank=True, help_text="Serve DNS names <host>.<domain> for nodes (dnsmasq); blank = no DNS."
    )
    lease_time = models.PositiveIntegerField(default=3600, help_text="DHCP lease time in seconds.")
    pi3_reply_delay = models.PositiveSmallIntegerField(
        default=1, help_text="Seconds dnsmasq waits before answering a Pi 3 (its ROM misses fast replies); 0 = off."
    )
    boot_url_base = models.CharField(
        max_length=200,
        blank=True,
        help_text="URL this site's booting nodes and installers reach pinet at (boot tokens, iPXE scripts), "
        "e.g. http://192.0.2.1:8000; blank = PINET_BOOT_URL_BASE.",
    )
    # Every change that alters what the site's daemons answer bumps config_requested; an
    # apply records the generation it rendered, so a burst of changes costs one apply.
    config_requested = models.PositiveBigIntegerField(default=0, editable=False)
    config_applied = models.PositiveBigIntegerField(default=0, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = SiteQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(slug__regex=validators.SLUG_RE), name="nodes_site_slug_format"),
            models.CheckConstraint(
                condition=Q(interface__regex=validators.INTERFACE_RE), name="nodes_site_interface_format"
            ),
            _choices_check("dhcp_backend", DhcpBackend, "nodes_site_dhcp_backend_valid"),
            models.CheckConstraint(
                condition=Q(range_start__isnull=True, range_end__isnull=True)
                | Q(range_start__isnull=False, range_end__isnull=False),
                name="nodes_site_range_both_or_neither",
                violation_error_message="Give both ends of the dynamic range, or neither.",
            ),
            models.CheckConstraint(
                condition=Q(boot_url_base="") | Q(boot_url_base__regex=validators.BOOT_URL_BASE_RE),
                name="nodes_site_boot_url_base_format",
                violation_error_message="The boot URL base is an http(s) URL with a host, without a trailing slash.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def queue(self) -> str:
        return f"site.{self.slug}"

    @property
    def nfs_server_address(self) -> str:
        return self.nfs_server or self.boot_server

    @property
    def effective_boot_url_base(self) -> str:
        """Where this site's boards reach pinet: its own base, else PINET_BOOT_URL_BASE."""
        return self.boot_url_base or settings.PINET_BOOT_URL_BASE

    @property
    def relay_address_list(self) -> list[str]:
        return [str(a) for a in validators.parse_ipv4_list(self.relay_addresses)]

    @property
    def dns_server_list(self) -> list[str]:
        return [str(a) for a in validators.parse_ipv4_list(self.dns_servers)]

    def in_dynamic_range(self, address: str) -> bool:
        if not (self.range_start and self.range_end):
            return False
        try:
            ip = ipaddress.IPv4Address(address)
            return ipaddress.IPv4Address(self.range_start) <= ip <= ipaddress.IPv4Address(self.range_end)
        except ValueError:
            return False

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        try:
            network = validators.parse_ipv4_network(self.subnet)
        except ValidationError as exc:
            raise ValidationError({"subnet": exc.messages}) from None
        self.subnet = str(network)
        for field in ("boot_server", "gateway", "range_start", "range_end", "nfs_server"):
            # Field validation already reported a malformed address; don't trip over it here.
            if getattr(self, field) and not _is_ipv4(getattr(self, field)):
                return
        for field in ("gateway", "range_start", "range_end"):
            value = getattr(self, field)
            if value and ipaddress.IPv4Address(value) not in network:
                errors.setdefault(field, []).append(f"{value} is not inside the subnet {network}.")
        if self.range_start and self.range_end and not errors:
            start, end = ipaddress.IPv4Address(self.range_start), ipaddress.IPv4Address(self.range_end)
            if start > end:
                errors.setdefault("range_end", []).append("The range must end after it starts.")
            for field in ("boot_server", "gateway"):
                value = getattr(self, field)
                if value and start <= ipaddress.IPv4Address(value) <= end:
                    errors.setdefault(field, []).append(
                        f"{value} is inside the dynamic range {start}-{end}; DHCP would hand it out."
                    )
        try:
            relays = validators.parse_ipv4_list(self.relay_addresses)
            self.relay_addresses = ", ".join(str(a) for a in relays)
        except ValidationError as exc:
            errors.setdefault("relay_addresses", []).extend(exc.messages)
        if self.dns_domain:
            self.dns_domain = self.dns_domain.strip().lower().rstrip(".")
            if not all(re.fullmatch(validators.HOSTNAME_RE, label) for label in self.dns_domain.split(".")):
                errors.setdefault("dns_domain", []).append(
                    f"{self.dns_domain} is not a DNS domain: dot-separated labels of letters, digits and hyphens."
                )
        try:
            self.boot_url_base = validators.normalize_boot_url_base(self.boot_url_base)
        except ValidationError as exc:
            errors.setdefault("boot_url_base", []).extend(exc.messages)
        if self.lease_time is not None and self.lease_time < 120:
            errors.setdefault("lease_time", []).append("Leases shorter than 120 seconds only add DHCP traffic.")
        if (self.range_start is None) != (self.range_end is None):
            errors.setdefault("range_end", []).append("Give both ends of the dynamic range, or neither.")
        try:
            self.dns_servers = ", ".join(str(a) for a in validators.parse_ipv4_list(self.dns_servers))
        except ValidationError as exc:
            errors.setdefault("dns_servers", []).extend(exc.messages)
        if self.pk and not errors:
            stranded = [
                node.hostname
                for node in Node.objects.filter(site=self, ip__isnull=False).only("hostname", "ip")
                if ipaddress.IPv4Address(node.ip) not in network or self.in_dynamic_range(node.ip)
            ]
            if stranded:
                errors.setdefault("subnet", []).append(
                    "These nodes' reserved addresses would fall outside the subnet or inside the "
                    f"dynamic range: {', '.join(sorted(stranded)[:10])}. Move them first."
                )
        if errors:
            raise ValidationError(errors)


class TenantQuerySet(models.QuerySet):
    def visible_to(self, user) -> TenantQuerySet:
        return tenant_scoped(self, user, "")


class Tenant(models.Model):
    """A customer organisation that rents boards; its members see only its boards."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    ssh_keys = models.TextField(
        blank=True, help_text="OpenSSH public keys, one per line, installed on the tenant's boards."
    )
    created = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(slug__regex=validators.SLUG_RE), name="nodes_tenant_slug_format"),
        ]

    def __str__(self) -> str:
        return self.name


class TenantMembership(models.Model):
    """A user's membership of a tenant; operators are staff users and need none."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_memberships")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant", "user", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="nodes_tenantmembership_unique_member"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant}"


class NodeQuerySet(models.QuerySet):
    def visible_to(self, user) -> NodeQuerySet:
        """Operators see every node; a customer (or a tenant API key) only its tenants' nodes."""
        return tenant_scoped(self, user, "tenant")


class Node(models.Model):
    """A machine pinet boots: identified by MAC (and Pi serial), placed in a site, maybe rented."""

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="nodes")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, null=True, blank=True, related_name="nodes")
    hostname = HostnameField(validators=[validators.validate_hostname])
    mac = MACAddressField(
        "MAC address", unique=True, error_messages={"unique": "Another node already has this MAC address."}
    )
    serial = PiSerialField(
        "Pi serial",
        null=True,
        blank=True,
        unique=True,
        error_messages={"unique": "Another node already has this Pi serial."},
    )
    board_model = models.CharField(max_length=16, choices=BoardModel.choices, default=BoardModel.UNKNOWN)
    ip = models.GenericIPAddressField(
        "reserved IPv4",
        protocol="IPv4",
        null=True,
        blank=True,
        help_text="Inside the site subnet and outside its dynamic range.",
    )
    relay_circuit_id = models.CharField(
        "option 82 circuit-id", max_length=128, blank=True, help_text="Switch port, as the relay sends it."
    )
    relay_remote_id = models.CharField(
        "option 82 remote-id", max_length=128, blank=True, help_text="Switch identity, as the relay sends it."
    )
    client_id = models.CharField("option 97 client id", max_length=64, blank=True, help_text="Hex, 17 bytes.")
    boot_mode = models.CharField(max_length=16, choices=BootMode.choices, default=BootMode.LOCAL)
    image = models.ForeignKey(
        "images.OSImage",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="nodes",
        help_text="The image this node netboots or installs.",
    )
    state = models.CharField(max_length=16, choices=NodeState.choices, default=NodeState.READY)
    power_driver = models.CharField(max_length=16, choices=PowerDriver.choices, default=PowerDriver.MANUAL)
    power_params = models.JSONField(default=dict, blank=True)
    # Fernet ciphertext of the driver's secrets (nodes/power/crypto.py); never shown or returned.
    power_secrets = models.TextField(blank=True, editable=False)
    last_seen = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = NodeQuerySet.as_manager()

    class Meta:
        ordering = ["site", "hostname", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["site", "hostname"],
                name="nodes_node_unique_hostname_per_site",
                violation_error_message="This site already has a node with that host name.",
            ),
            models.UniqueConstraint(
                fields=["site", "ip"],
                name="nodes_node_unique_ip_per_site",
                violation_error_message="Another node in this site already has that reserved address.",
            ),
            models.UniqueConstraint(
                fields=["site", "relay_remote_id", "relay_circuit_id"],
                condition=~Q(relay_circuit_id=""),
                name="nodes_node_unique_switch_port",
                violation_error_message="Another node in this site is on that switch port (option 82).",
            ),
            models.UniqueConstraint(
                fields=["client_id"],
                condition=~Q(client_id=""),
                name="nodes_node_unique_client_id",
                violation_error_message="Another node already has that option 97 client id.",
            ),
            models.CheckConstraint(condition=Q(mac__regex=validators.MAC_RE), name="nodes_node_mac_format"),
            models.CheckConstraint(
                condition=Q(hostname__regex=validators.HOSTNAME_RE), name="nodes_node_hostname_format"
            ),
            models.CheckConstraint(
                condition=Q(serial__isnull=True) | Q(serial__regex=validators.SERIAL_RE),
                name="nodes_node_serial_format",
            ),
            models.CheckConstraint(
                condition=Q(client_id="") | Q(client_id__regex=r"^[0-9a-f]{2}(:[0-9a-f]{2})*$"),
                name="nodes_node_client_id_format",
            ),
            _choices_check("board_model", BoardModel, "nodes_node_board_model_valid"),
            _choices_check("boot_mode", BootMode, "nodes_node_boot_mode_valid"),
            _choices_check("state", NodeState, "nodes_node_state_valid"),
            _choices_check("power_driver", PowerDriver, "nodes_node_power_driver_valid"),
            # "inside the subnet, outside the dynamic range" spans two tables, so it is a
            # trigger (nodes/dbrules.py), installed after every migrate.
        ]

    def __str__(self) -> str:
        return self.hostname

    @property
    def mac_dashed(self) -> str:
        """The MAC as dnsmasq's tftp-unique-root=mac and EEPROM TFTP_PREFIX=2 spell it."""
        return self.mac.replace(":", "-")

    @property
    def tftp_serial_prefix(self) -> str | None:
        """The low 32 bits of the serial: the default Pi 4 EEPROM TFTP prefix."""
        return self.serial[-8:] if self.serial else None

    def clean(self) -> None:
        self.client_id = (self.client_id or "").strip().lower().replace("-", ":")
        if self.relay_circuit_id and self.site_id and self.site.dhcp_backend == DhcpBackend.KEA:
            # Kea keys reservations by circuit-id alone (remote-id needs a commercial hook).
            twin = Node.objects.filter(site_id=self.site_id, relay_circuit_id=self.relay_circuit_id)
            if twin.exclude(pk=self.pk).exists():
                raise ValidationError(
                    {
                        "relay_circuit_id": "Another node in this Kea site has that circuit-id; Kea cannot tell "
                        "switches apart, so give each port a distinct circuit-id."
                    }
                )
        if self.ip and self.site_id and _is_ipv4(self.ip):
            site = self.site
            address = ipaddress.IPv4Address(self.ip)
            if address not in site.network:
                raise ValidationError({"ip": f"{self.ip} is outside the site subnet {site.subnet}."})
            if site.in_dynamic_range(self.ip):
                raise ValidationError(
                    {
                        "ip": f"{self.ip} is inside the dynamic range {site.range_start}-{site.range_end}; "
                        "pick an address outside it so DHCP never hands it to another client."
                    }
                )
            if address in (site.network.network_address, site.network.broadcast_address):
                raise ValidationError({"ip": f"{self.ip} is the network or broadcast address of {site.subnet}."})
            if self.ip in (site.boot_server, site.gateway):
                raise ValidationError({"ip": f"{self.ip} is the site's boot server or gateway."})


class PowerActionQuerySet(models.QuerySet):
    def visible_to(self, user) -> PowerActionQuerySet:
        """Operators see every action; a customer those asked for while their tenant had the board."""
        return tenant_scoped(self, user, "tenant")


class PowerAction(models.Model):
    """One request to switch or read a board's power and what came of it. The rows are also the
    rate limiter's memory; status changes only through nodes.power.services (compare-and-swap)."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="power_actions")
    # The tenant that had the board when the action was asked for (as on InstallJob).
    tenant = models.ForeignKey(Tenant, on_delete=models.SET_NULL, null=True, blank=True, related_name="power_actions")
    action = models.CharField(max_length=16, choices=PowerActionKind.choices)
    status = models.CharField(max_length=16, choices=PowerActionStatus.choices, default=PowerActionStatus.QUEUED)
    driver = models.CharField(max_length=16, choices=PowerDriver.choices, help_text="The driver when it was asked.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="power_actions"
    )
    requested_by_label = models.CharField(max_length=150, help_text="User name, API key or 'system' at the time.")
    reason = models.CharField(max_length=200, blank=True)
    job = models.ForeignKey(
        "provisioning.InstallJob", on_delete=models.SET_NULL, null=True, blank=True, related_name="power_actions"
    )
    power_state = models.CharField(max_length=16, choices=PowerState.choices, blank=True)
    detail = models.TextField(blank=True, help_text="What the switch or plug answered.")
    error = models.TextField(blank=True)
    # A reboot must not race the DHCP change it is for: the board would boot the old answer.
    wait_for_config = models.PositiveBigIntegerField(
        default=0, help_text="Runs once the site has applied this configuration generation."
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = PowerActionQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-pk"]
        indexes = [models.Index(fields=["node", "created"], name="nodes_poweraction_node_created")]
        constraints = [
            _choices_check("action", PowerActionKind, "nodes_poweraction_action_valid"),
            _choices_check("status", PowerActionStatus, "nodes_poweraction_status_valid"),
            _choices_check("driver", PowerDriver, "nodes_poweraction_driver_valid"),
            models.CheckConstraint(
                condition=Q(power_state="") | Q(power_state__in=PowerState.values),
                name="nodes_poweraction_power_state_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.node} ({self.status})"


HEX_RE = r"^([0-9a-f]{2})*$"
CLIENT_ID_RE = r"^[0-9a-f]{2}(:[0-9a-f]{2})*$"


class DiscoveredBoard(models.Model):
    """A board that asked a site for a network boot and is not a node: what its DHCP DISCOVER
    said about it, how often it asked, and the operator's decision (adopt or ignore)."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="discovered_boards")
    mac = MACAddressField("MAC address")
    vendor_class = models.CharField("option 60 vendor class", max_length=255, blank=True)
    arch = models.PositiveIntegerField(
        "option 93 architecture", null=True, blank=True, help_text="The first value the client sent (0 = x86 BIOS)."
    )
    client_id = models.CharField(
        "option 97 client id", max_length=64, blank=True, help_text="Hex, as Node.client_id spells it."
    )
    board_model = models.CharField(max_length=16, choices=BoardModel.choices, default=BoardModel.UNKNOWN)
    revision = models.CharField(
        "board revision code", max_length=8, blank=True, help_text="Hex, from a Pi 4/5's option 97 (e.g. c03111)."
    )
    serial = PiSerialField("Pi serial", null=True, blank=True)
    is_pi = models.BooleanField("Raspberry Pi", default=False)
    circuit_id = models.CharField(
        "option 82 circuit-id", max_length=510, blank=True, help_text="Raw bytes in hex, as the relay sent them."
    )
    remote_id = models.CharField(
        "option 82 remote-id", max_length=510, blank=True, help_text="Raw bytes in hex, as the relay sent them."
    )
    relay_address = models.GenericIPAddressField(
        "relay (giaddr)", protocol="IPv4", null=True, blank=True, help_text="Set when a relay forwarded the request."
    )
    status = models.CharField(max_length=16, choices=DiscoveryStatus.choices, default=DiscoveryStatus.NEW)
    node = models.ForeignKey(
        Node,
        # Deleting the node forgets the board: if it asks again it is discovered afresh.
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="discovered_boards",
        help_text="The node it was adopted as.",
    )
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    seen_count = models.PositiveIntegerField(default=1, help_text="DHCP requests heard from it.")

    class Meta:
        ordering = ["site", "-last_seen", "pk"]
        indexes = [models.Index(fields=["site", "status"], name="nodes_discoveredboard_status")]
        constraints = [
            models.UniqueConstraint(
                fields=["site", "mac"],
                name="nodes_discoveredboard_unique_mac_per_site",
                violation_error_message="This site already has a record of that board.",
            ),
            models.CheckConstraint(condition=Q(mac__regex=validators.MAC_RE), name="nodes_discoveredboard_mac_format"),
            models.CheckConstraint(
                condition=Q(serial__isnull=True) | Q(serial__regex=validators.SERIAL_RE),
                name="nodes_discoveredboard_serial_format",
            ),
            models.CheckConstraint(
                condition=Q(client_id="") | Q(client_id__regex=CLIENT_ID_RE),
                name="nodes_discoveredboard_client_id_format",
            ),
            models.CheckConstraint(
                condition=Q(revision="") | Q(revision__regex=r"^[0-9a-f]{8}$"),
                name="nodes_discoveredboard_revision_format",
            ),
            models.CheckConstraint(condition=Q(circuit_id__regex=HEX_RE), name="nodes_discoveredboard_circuit_id_hex"),
            models.CheckConstraint(condition=Q(remote_id__regex=HEX_RE), name="nodes_discoveredboard_remote_id_hex"),
            models.CheckConstraint(condition=Q(arch__lte=65535), name="nodes_discoveredboard_arch_range"),
            models.CheckConstraint(
                condition=Q(last_seen__gte=models.F("first_seen")), name="nodes_discoveredboard_seen_order"
            ),
            _choices_check("board_model", BoardModel, "nodes_discoveredboard_board_model_valid"),
            _choices_check("status", DiscoveryStatus, "nodes_discoveredboard_status_valid"),
            models.CheckConstraint(
                condition=Q(status=DiscoveryStatus.ADOPTED, node__isnull=False)
                | (~Q(status=DiscoveryStatus.ADOPTED) & Q(node__isnull=True)),
                name="nodes_discoveredboard_adopted_has_node",
                violation_error_message="An adopted board names its node, and only an adopted one does.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.mac} ({self.get_board_model_display()}) at {self.site.slug}" if self.site_id else self.mac

    @property
    def circuit_id_text(self) -> str:
        """The circuit-id in a readable form (text, a D-Link VLAN/module/port tuple, else hex)."""
        return relay_id_text(self.circuit_id)

    @property
    def remote_id_text(self) -> str:
        return relay_id_text(self.remote_id, remote=True)


def relay_id_text(hex_value: str, *, remote: bool = False) -> str:
    """Decode an option 82 sub-option for people. Formats are vendor-specific (netboot.md §5):
    printable ASCII is shown as text; D-Link's circuit-id (type 0, length 4, VLAN(2),
    module(1), port(1)) and remote-id (type 0, length 6, switch MAC) are spelled out;
    anything else stays hex."""
    try:
        raw = bytes.fromhex(hex_value or "")
    except ValueError:
        return hex_value
    if not raw:
        return ""
    if all(0x20 <= b < 0x7F for b in raw):
        return raw.decode("ascii")
    if not remote and len(raw) == 6 and raw[:2] == b"\x00\x04":
        vlan = int.from_bytes(raw[2:4], "big")
        return f"vlan {vlan} module {raw[4]} port {raw[5]}"
    if remote and len(raw) == 8 and raw[:2] == b"\x00\x06":
        return "switch " + ":".join(f"{b:02x}" for b in raw[2:])
    return "hex:" + raw.hex()


class AuditLog(models.Model):
    """Who did what to which object, written in the same transaction as the change."""

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_entries"
    )
    actor_label = models.CharField(max_length=150, help_text="User name, API key or 'system' at the time.")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="nodes_auditlog_object")]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.object_repr}"


class ApiKeyScope(models.TextChoices):
    OPERATOR = "operator", "Operator (everything)"
    BILLING = "billing", "Billing (tenants, assignments and jobs of every tenant)"
    TENANT = "tenant", "Tenant (that tenant's boards only)"


class ApiKey(models.Model):
    """A credential for scripts and the billing system. Only a hash is stored; the prefix
    identifies it in lists and logs."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, unique=True)
    key_hash = models.CharField(max_length=64)
    scope = models.CharField(max_length=16, choices=ApiKeyScope.choices)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, null=True, blank=True, related_name="api_keys")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(scope__in=ApiKeyScope.values), name="nodes_apikey_scope_valid"),
            models.CheckConstraint(
                condition=Q(scope="tenant", tenant__isnull=False) | (~Q(scope="tenant") & Q(tenant__isnull=True)),
                name="nodes_apikey_tenant_scope_has_tenant",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.scope})"


class IdempotencyRecord(models.Model):
    """The response to a POST sent with an Idempotency-Key, replayed when the key comes again."""

    principal = models.CharField(max_length=100)
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(default=0, help_text="0 while the first request runs.")
    body = models.BinaryField(default=b"")
    content_type = models.CharField(max_length=100, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["principal", "key"], name="nodes_idempotencyrecord_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.principal} {self.key} ({self.status or 'running'})"


WEBHOOK_EVENTS = (
    "node.assigned",
    "node.released",
    "node.suspended",
    "node.discovered",
    "install_job.succeeded",
    "install_job.failed",
    "image.ready",
    "image.failed",
)


class WebhookEndpoint(models.Model):
    """A URL that hears about events (the billing system's, typically), signed with its secret."""

    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=200, help_text="Shared secret for the X-Pinet-Signature HMAC.")
    events = models.JSONField(default=list, help_text=f"Any of: {', '.join(WEBHOOK_EVENTS)}.")
    active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["url", "pk"]

    def __str__(self) -> str:
        return self.url

    def clean(self) -> None:
        unknown = [e for e in (self.events or []) if e not in WEBHOOK_EVENTS]
        if unknown or not isinstance(self.events, list):
            raise ValidationError(
                {"events": f"Unknown events: {', '.join(map(str, unknown))}; use any of {', '.join(WEBHOOK_EVENTS)}."}
            )


class WebhookDelivery(models.Model):
    """One event sent (or being sent) to one endpoint, with what happened."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, default="pending")  # pending | succeeded | failed
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "succeeded", "failed"]), name="nodes_webhookdelivery_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} -> {self.endpoint} ({self.status})"
