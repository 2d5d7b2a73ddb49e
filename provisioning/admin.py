from django.contrib import admin

from .models import BootToken, ConfigRevision, InstallJob, JobEvent, WorkerCheck


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by pinet's services: operators read them, never edit them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    can_delete = False
    fields = ["created", "source", "stage", "percent", "message"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(InstallJob)
class InstallJobAdmin(ReadOnlyAdmin):
    list_display = ["pk", "node", "image", "status", "stage", "percent", "requested_by", "created", "finished_at"]
    list_filter = ["status", "node__site"]
    search_fields = ["node__hostname", "node__mac", "node__serial", "image__name"]
    list_select_related = ["node", "image", "requested_by"]
    inlines = [JobEventInline]


@admin.register(JobEvent)
class JobEventAdmin(ReadOnlyAdmin):
    list_display = ["created", "job", "source", "stage", "percent", "message"]
    list_filter = ["source", "stage"]
    search_fields = ["job__node__hostname", "message"]


@admin.register(BootToken)
class BootTokenAdmin(ReadOnlyAdmin):
    list_display = ["token_hash_prefix", "job", "created", "expires_at", "used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["job__node__hostname", "job__node__mac"]
    exclude = ["token_hash"]

    @admin.display(description="token hash")
    def token_hash_prefix(self, obj):
        return f"{obj.token_hash[:8]}…"


@admin.register(ConfigRevision)
class ConfigRevisionAdmin(ReadOnlyAdmin):
    list_display = ["created", "site", "backend", "status", "short_sha"]
    list_filter = ["status", "backend", "site"]
    search_fields = ["sha256", "validator_output"]

    @admin.display(description="sha256")
    def short_sha(self, obj):
        return obj.sha256[:12]


@admin.register(WorkerCheck)
class WorkerCheckAdmin(ReadOnlyAdmin):
    list_display = ["created", "queue", "answered_at", "answered_by"]
    list_filter = ["queue"]
