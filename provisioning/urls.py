from django.urls import path

from . import views

urlpatterns = [
    path("status/", views.status, name="status"),
    path("status/worker-checks/", views.worker_check_create, name="worker-check-create"),
    path("status/worker-checks/<int:pk>/", views.worker_check_detail, name="worker-check-detail"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/<int:pk>/cancel", views.job_cancel, name="job-cancel"),
    path("config/", views.revision_list, name="revision-list"),
    path("config/<int:pk>/", views.revision_detail, name="revision-detail"),
]
