from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction

from .models import (
    ApiKey,
    AuditLog,
    DiscoveredBoard,
    IdempotencyRecord,
    Node,
    PowerAction,
    Site,
    Tenant,
    TenantMembership,
    WebhookDelivery,
    WebhookEndpoint,
)
from .services import audit_log_write, reconfigure_sites
from .validators import normalize_mac


class AuditedAdmin(admin.ModelAdmin):
    """Every change made in the admin lands in the audit log, like a change made elsewhere."""

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            audit_log_write(
                actor=request.user,
                action=f"{obj._meta.model_name}.{'update' if change else 'create'}",
                obj=obj,
                data={"via": "admin", "fields": sorted(form.changed_data)},
            )
            self.after_change(obj)

    def after_change(self, obj) -> None:
        """Hook: what else a change to this object sets in motion."""

    def delete_model(self, request, obj):
        with transaction.atomic():
            audit_log_write(actor=request.user, action=f"{obj._meta.model_name}.delete", obj=obj, data={"via": "admin"})
            super().delete_model(request, obj)
            self.after_change(obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset:
                audit_log_write(
                    actor=request.user, action=f"{obj._meta.model_name}.delete", obj=obj, data={"via": "admin"}
                )
            objects = list(queryset)
            super().delete_queryset(request, queryset)
            for obj in objects:
                self.after_change(obj)


@admin.register(Site)
class SiteAdmin(AuditedAdmin):
    def after_change(self, obj) -> None:
        reconfigure_sites(obj)

    def get_readonly_fields(self, request, obj=None):
        # The slug names the site's queue and directories; it is fixed once the site exists.
        return ["slug"] if obj is not None else []

    def get_prepopulated_fields(self, request, obj=None):
        return {} if obj is not None else {"slug": ["name"]}

    list_display = ["name", "slug", "subnet", "boot_server", "interface", "dhcp_backend", "discovery_enabled"]
    list_filter = ["dhcp_backend", "discovery_enabled"]
    search_fields = ["name", "slug", "subnet", "boot_server"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["name", "slug", "dhcp_backend", "discovery_enabled"]}),
        ("DHCP", {"fields": ["lease_time", "pi3_reply_delay", "dns_domain", "relay_addresses"]}),
        (
            "Network",
            {
                "fields": [
                    "interface",
                    "subnet",
                    "boot_server",
                    "gateway",
                    "dns_servers",
                    "range_start",
                    "range_end",
                    "nfs_server",
                    "boot_url_base",
                ]
            },
        ),
    ]


class MembershipInline(admin.TabularInline):
    model = TenantMembership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(AuditedAdmin):
    list_display = ["name", "slug", "created"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


class NodeAdminForm(forms.ModelForm):
    """The node form, with the power driver's secrets write-only: typed in, encrypted, never
    shown again (the form shows which are set)."""

    power_secrets_input = forms.JSONField(
        label="Power secrets",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        help_text='Write-only JSON, e.g. {"community": "…"} (snmp-poe v2c), {"auth_key": "…", "priv_key": "…"} '
        '(v3), {"password": "…"} / {"token": "…"} / {"headers": {…}} / {"query": {…}} (webhook). Keys left out '
        "keep their stored value; null removes one. See README, Power control.",
    )

    class Meta:
        model = Node
        # The admin's fieldsets choose what is shown; this is what the form may write.
        fields = [
            *("hostname", "site", "tenant", "board_model", "mac", "serial", "client_id"),
            *("relay_remote_id", "relay_circuit_id", "ip", "boot_mode", "image", "power_driver", "power_params"),
        ]

    def clean(self):
        from .power.services import power_settings_clean

        cleaned = super().clean()
        secrets = cleaned.get("power_secrets_input")
        if secrets is not None and not isinstance(secrets, dict):
            self.add_error("power_secrets_input", "A JSON object of secret names to values.")
            return cleaned
        if "power_driver" not in cleaned or "power_params" not in cleaned:
            return cleaned  # the field errors are already on the form
        try:
            power_settings_clean(
                node=self.instance if self.instance.pk else None,
                driver=cleaned["power_driver"],
                params=cleaned["power_params"] or {},
                secrets=secrets,
            )
        except ValidationError as exc:
            messages = exc.message_dict if hasattr(exc, "error_dict") else {"power_params": exc.messages}
            for key, texts in messages.items():
                self.add_error("power_params", [f"{key}: {text}" for text in texts])
        return cleaned


@admin.register(Node)
class NodeAdmin(AuditedAdmin):
    form = NodeAdminForm

    def after_change(self, obj) -> None:
        reconfigure_sites(obj.site)

    def save_model(self, request, obj, form, change):
        from .power.services import node_power_set

        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if {"power_driver", "power_params", "power_secrets_input"} & set(form.changed_data):
                # Through the service: parameters normalised, secrets encrypted, an audit entry.
                node_power_set(
                    node=obj,
                    driver=form.cleaned_data["power_driver"],
                    params=form.cleaned_data["power_params"] or {},
                    secrets=form.cleaned_data.get("power_secrets_input"),
                    by=request.user,
                )

    @admin.display(description="Stored power secrets")
    def power_secrets_state(self, obj) -> str:
        from .power.selectors import node_power_settings

        if obj is None or obj.pk is None:
            return "none"
        state = node_power_settings(node=obj)["secrets"]
        return "; ".join(f"{name}: {value}" for name, value in state.items()) or "this driver takes none"

    list_display = [
        "hostname",
        "site",
        "tenant",
        "board_model",
        "mac",
        "serial",
        "ip",
        "boot_mode",
        "state",
        "last_seen",
    ]
    list_filter = ["site", "state", "boot_mode", "board_model", "tenant"]
    search_fields = ["hostname", "mac", "serial", "ip", "relay_circuit_id", "client_id"]
    list_select_related = ["site", "tenant"]
    autocomplete_fields = ["tenant"]
    # State changes only through the lifecycle services (STYLE.md R3).
    readonly_fields = ["state", "last_seen", "created", "updated", "power_secrets_state"]
    fieldsets = [
        (None, {"fields": ["hostname", "site", "tenant", "board_model", "state"]}),
        ("Identity", {"fields": ["mac", "serial", "client_id", "relay_remote_id", "relay_circuit_id"]}),
        ("Boot", {"fields": ["ip", "boot_mode", "image"]}),
        ("Power", {"fields": ["power_driver", "power_params", "power_secrets_input", "power_secrets_state"]}),
        ("Times", {"fields": ["last_seen", "created", "updated"]}),
    ]

    def get_search_results(self, request, queryset, search_term):
        # Operators paste MACs in every spelling; search the canonical one too.
        queryset, distinct = super().get_search_results(request, queryset, search_term)
        try:
            queryset |= self.model.objects.filter(mac=normalize_mac(search_term.strip()))
        except ValidationError:
            pass  # not a MAC: the ordinary search above is the whole answer
        return queryset, distinct


@admin.register(PowerAction)
class PowerActionAdmin(admin.ModelAdmin):
    """Power actions are a record: read-only here, asked for through the API or the dashboard."""

    list_display = ["created", "node", "action", "status", "driver", "requested_by_label", "reason", "power_state"]
    list_filter = ["status", "action", "driver"]
    search_fields = ["node__hostname", "reason", "requested_by_label", "error"]
    list_select_related = ["node"]
    date_hierarchy = "created"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DiscoveredBoard)
class DiscoveredBoardAdmin(AuditedAdmin):
    """What the listeners heard, read-only: adopt in the dashboard or the API; ignore and
    un-ignore here too. Deleting a record forgets the board until it asks again."""

    list_display = ["mac", "site", "status", "board_model", "serial", "is_pi", "last_seen", "seen_count", "node"]
    list_filter = ["site", "status", "board_model", "is_pi"]
    search_fields = ["mac", "serial", "vendor_class", "client_id"]
    list_select_related = ["site", "node"]
    actions = ["ignore", "unignore"]
    fieldsets = [
        (None, {"fields": ["site", "mac", "status", "node"]}),
        ("Board", {"fields": ["board_model", "is_pi", "serial", "revision", "vendor_class", "arch", "client_id"]}),
        (
            "Relay (option 82)",
            {"fields": ["relay_address", "circuit_id_text", "circuit_id", "remote_id_text", "remote_id"]},
        ),
        ("Seen", {"fields": ["first_seen", "last_seen", "seen_count"]}),
    ]
    readonly_fields = [f for _, options in fieldsets for f in options["fields"]]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Ignore the selected boards (blocklist)")
    def ignore(self, request, queryset):
        from .discovery_services import discovered_board_ignore

        self._each(request, queryset, discovered_board_ignore)

    @admin.action(description="Stop ignoring the selected boards")
    def unignore(self, request, queryset):
        from .discovery_services import discovered_board_unignore

        self._each(request, queryset, discovered_board_unignore)

    def _each(self, request, queryset, service) -> None:
        from pinet.lifecycle import InvalidTransition

        for board in queryset:
            try:
                service(board=board, by=request.user)
            except InvalidTransition as exc:
                messages.warning(request, str(exc))

    def get_search_results(self, request, queryset, search_term):
        queryset, distinct = super().get_search_results(request, queryset, search_term)
        try:
            queryset |= self.model.objects.filter(mac=normalize_mac(search_term.strip()))
        except ValidationError:
            pass  # not a MAC: the ordinary search above is the whole answer
        return queryset, distinct


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ["created", "actor_label", "action", "object_type", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "action", "object_repr", "object_id"]
    date_hierarchy = "created"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "scope", "tenant", "created", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["scope", "tenant"]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return (
            ["name", "scope", "tenant", "expires_at"]
            if obj is None
            else ["name", "prefix", "scope", "tenant", "created", "expires_at", "revoked_at", "last_used_at"]
        )

    def get_readonly_fields(self, request, obj=None):
        return (
            []
            if obj is None
            else ["name", "prefix", "scope", "tenant", "created", "expires_at", "revoked_at", "last_used_at"]
        )

    def save_model(self, request, obj, form, change):
        from .apikeys import api_key_create

        key, row = api_key_create(
            name=obj.name, scope=obj.scope, tenant=obj.tenant, expires_at=obj.expires_at, by=request.user
        )
        obj.pk, obj.prefix, obj.key_hash, obj.created = row.pk, row.prefix, row.key_hash, row.created
        obj._state.adding = False
        messages.warning(request, f"The new key, shown only this once: {key}")

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        from .apikeys import api_key_revoke

        for key in queryset:
            api_key_revoke(key=key, by=request.user)

    def has_change_permission(self, request, obj=None):
        return obj is None

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ["created", "key", "status"]
    search_fields = ["key"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    can_delete = False
    fields = ["created", "event", "status", "attempts", "last_status_code", "last_error", "delivered_at"]
    readonly_fields = fields
    ordering = ["-created"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AuditedAdmin):
    list_display = ["url", "active", "created"]
    list_filter = ["active"]
    search_fields = ["url"]
    inlines = [WebhookDeliveryInline]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["created", "event", "endpoint", "status", "attempts", "last_status_code"]
    list_filter = ["status", "event"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
