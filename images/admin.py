from django.contrib import admin

from nodes.admin import AuditedAdmin

from .models import OSImage


@admin.register(OSImage)
class OSImageAdmin(AuditedAdmin):
    list_display = ["name", "version", "arch", "kind", "state", "stage", "percent", "created"]
    list_filter = ["state", "arch", "kind", "format"]
    search_fields = ["name", "source", "sha256"]
    readonly_fields = [
        "version",
        "state",
        "stage",
        "bytes_done",
        "bytes_total",
        "error",
        "source_size",
        "image_size",
        "root_path",
        "boot_path",
        "artefact_path",
        "artefact_sha256",
        "artefact_size",
        "created",
        "updated",
    ]
