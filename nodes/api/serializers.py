from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from nodes import selectors
from nodes.choices import BoardModel, BootMode, PowerActionKind, PowerDriver
from nodes.models import (
    WEBHOOK_EVENTS,
    ApiKey,
    AuditLog,
    DiscoveredBoard,
    Node,
    PowerAction,
    Site,
    Tenant,
    WebhookDelivery,
    WebhookEndpoint,
)


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = [
            "id",
            "name",
            "slug",
            "boot_server",
            "interface",
            "subnet",
            "gateway",
            "dns_servers",
            "range_start",
            "range_end",
            "dhcp_backend",
            "nfs_server",
            "discovery_enabled",
            "relay_addresses",
            "dns_domain",
            "lease_time",
            "pi3_reply_delay",
            "boot_url_base",
            "created",
            "updated",
        ]
        read_only_fields = ["created", "updated"]


class TenantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "name", "slug", "ssh_keys", "created"]
        read_only_fields = ["created"]


class TenantUserSerializer(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]{1,150}$", help_text="Letters, digits and @.+-_")
    email = serializers.EmailField(required=False, allow_blank=True, write_only=True)
    password = serializers.CharField(write_only=True, required=False, min_length=10)
    existing = serializers.BooleanField(
        required=False,
        default=False,
        write_only=True,
        help_text="Add an existing (customer) account instead of creating one.",
    )


class NodeSerializer(serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="slug", queryset=Site.objects.all())
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = Node
        fields = [
            "id",
            "hostname",
            "site",
            "tenant",
            "mac",
            "serial",
            "board_model",
            "ip",
            "relay_circuit_id",
            "relay_remote_id",
            "client_id",
            "boot_mode",
            "image",
            "state",
            "power_driver",
            "last_seen",
            "created",
            "updated",
        ]
        # The power driver changes with its parameters, through /power-settings/.
        read_only_fields = ["tenant", "boot_mode", "state", "power_driver", "last_seen", "created", "updated"]
        validators = []  # the service validates (with the database rules) and says what to fix


class BootModeSerializer(serializers.Serializer):
    boot_mode = serializers.ChoiceField(choices=[BootMode.LOCAL, BootMode.NETBOOT])


class ReinstallSerializer(serializers.Serializer):
    image = serializers.IntegerField(help_text="The id of a ready OS image of the board's architecture.")


class AssignSerializer(serializers.Serializer):
    tenant = serializers.SlugField()


class AuditLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditLog
        fields = ["id", "created", "actor_label", "action", "object_type", "object_id", "object_repr", "data"]


class ApiKeySerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scope", "tenant", "created", "expires_at", "revoked_at", "last_used_at"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.RegexField(
        r"^(operator|billing|tenant:[a-z0-9-]+)$", help_text="operator, billing or tenant:<slug>"
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


User = get_user_model()


class WebhookEndpointSerializer(serializers.ModelSerializer):
    secret = serializers.CharField(write_only=True, min_length=16, max_length=200)

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "secret", "events", "active", "created"]
        read_only_fields = ["created"]

    def validate_events(self, value):
        unknown = [e for e in value if e not in WEBHOOK_EVENTS] if isinstance(value, list) else [value]
        if unknown:
            raise serializers.ValidationError(f"Unknown events: {unknown}; use any of {', '.join(WEBHOOK_EVENTS)}.")
        return value

    def validate_url(self, value):
        if not value.startswith(("http://", "https://")):
            raise serializers.ValidationError("Use an http(s) URL.")
        return value


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "payload",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "created",
            "delivered_at",
        ]
        read_only_fields = fields


class PowerActionSerializer(serializers.ModelSerializer):
    hostname = serializers.CharField(source="node.hostname", read_only=True)

    class Meta:
        model = PowerAction
        fields = [
            "id",
            "node",
            "hostname",
            "action",
            "status",
            "driver",
            "requested_by_label",
            "reason",
            "job",
            "power_state",
            "detail",
            "error",
            "created",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if not (request and request.user.is_staff):
            # What a switch or plug answered names the site's infrastructure (addresses,
            # OIDs, URLs): customers learn the outcome, operators read the details.
            if data["error"]:
                data["error"] = "The power action failed; an operator can see why."
            if data["status"] != "manual":
                data["detail"] = ""
        return data


class PowerRequestSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=PowerActionKind.choices)


class PowerManualSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What a person has to do: pinet cannot switch this board.")
    power_action = PowerActionSerializer()


class PowerSettingsSerializer(serializers.Serializer):
    driver = serializers.ChoiceField(choices=PowerDriver.choices)
    params = serializers.JSONField(
        required=False, default=dict, help_text="The driver's parameters (stored in clear); see README, Power control."
    )
    secrets = serializers.JSONField(
        required=False,
        write_only=True,
        help_text="Write-only: community, auth_key, priv_key (snmp-poe); password, token, headers, query "
        "(webhook). Keys left out keep their stored value; null removes one. Never returned.",
    )

    def validate_params(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("A JSON object of parameter names to values.")
        return value

    def validate_secrets(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("A JSON object of secret names to values.")
        return value


class PowerSettingsStateSerializer(serializers.Serializer):
    driver = serializers.ChoiceField(choices=PowerDriver.choices)
    params = serializers.JSONField()
    secrets_state = serializers.DictField(
        child=serializers.CharField(), help_text='Each secret the driver takes: "set", "not set" or "unreadable".'
    )


class DiscoveredBoardSerializer(serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    circuit_id_text = serializers.CharField(
        read_only=True, help_text="The circuit-id decoded where the format is known."
    )
    remote_id_text = serializers.CharField(read_only=True, help_text="The remote-id decoded where the format is known.")

    class Meta:
        model = DiscoveredBoard
        fields = [
            "id",
            "site",
            "mac",
            "status",
            "board_model",
            "is_pi",
            "serial",
            "revision",
            "vendor_class",
            "arch",
            "client_id",
            "circuit_id",
            "circuit_id_text",
            "remote_id",
            "remote_id_text",
            "relay_address",
            "first_seen",
            "last_seen",
            "seen_count",
            "node",
        ]
        read_only_fields = fields


class DiscoveredBoardDetailSerializer(DiscoveredBoardSerializer):
    """One board, with what adopting it would use by default."""

    suggested_hostname = serializers.SerializerMethodField()
    suggested_ip = serializers.SerializerMethodField()

    class Meta(DiscoveredBoardSerializer.Meta):
        fields = [*DiscoveredBoardSerializer.Meta.fields, "suggested_hostname", "suggested_ip"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_suggested_hostname(self, board) -> str:
        return selectors.hostname_suggest(board=board)

    @extend_schema_field({"type": "string", "format": "ipv4", "nullable": True})
    def get_suggested_ip(self, board) -> str | None:
        return selectors.ip_next_free(site=board.site)


class AdoptSerializer(serializers.Serializer):
    hostname = serializers.CharField(
        required=False, max_length=63, help_text="Default: the suggested name (pi4-<serial>, pc-<mac>...)."
    )
    ip = serializers.IPAddressField(
        protocol="IPv4",
        required=False,
        allow_null=True,
        help_text="Reserved address. Default: the first free one outside the dynamic range; null: none.",
    )
    tenant = serializers.SlugField(required=False, allow_null=True, help_text="Rent it to this tenant at once.")
    boot_mode = serializers.ChoiceField(choices=[BootMode.LOCAL, BootMode.NETBOOT], default=BootMode.LOCAL)
    image = serializers.IntegerField(required=False, allow_null=True, help_text="The image it netboots.")
    board_model = serializers.ChoiceField(
        choices=BoardModel.choices, required=False, help_text="Default: the model the board's request showed."
    )
