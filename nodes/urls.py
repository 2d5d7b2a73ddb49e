from django.urls import path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("nodes/bulk", views.node_bulk, name="node-bulk"),
    path("audit/", views.audit_log, name="audit-log"),
    path("discovered/", views.discovered_list, name="discovered-list"),
    path("discovered/<int:pk>/adopt", views.discovered_adopt, name="discovered-adopt"),
    path("discovered/<int:pk>/ignore", views.discovered_ignore, name="discovered-ignore"),
    path("nodes/<int:pk>/", views.node_detail, name="node-detail"),
    path("nodes/<int:pk>/progress", views.node_progress, name="node-progress"),
    path("nodes/<int:pk>/boot-mode", views.node_boot_mode, name="node-boot-mode"),
    path("nodes/<int:pk>/power", views.node_power_action, name="node-power"),
    path("nodes/<int:pk>/reinstall", views.node_reinstall, name="node-reinstall"),
    path("nodes/<int:pk>/jobs/<int:job_id>/cancel", views.job_cancel, name="node-job-cancel"),
]
