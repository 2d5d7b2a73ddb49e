from django.urls import path

from . import boot_views

urlpatterns = [
    path("ipxe/", boot_views.ipxe_entry, name="boot-ipxe"),
    path("agent.sh", boot_views.agent, name="boot-agent"),
    path("<str:token>/", boot_views.plan, name="boot-plan"),
    path("<str:token>/image", boot_views.image, name="boot-image"),
    path("<str:token>/netplan", boot_views.netplan, name="boot-netplan"),
    path("<str:token>/events", boot_views.events, name="boot-events"),
    path("<str:token>/done", boot_views.done, name="boot-done"),
    path("<str:token>/failed", boot_views.failed, name="boot-failed"),
    path("<str:token>/installer/<str:name>", boot_views.installer_file, name="boot-installer-file"),
]
