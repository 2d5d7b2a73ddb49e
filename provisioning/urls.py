from django.urls import path

from . import views

urlpatterns = [
    path("", views.status, name="status"),
    path("worker-checks/", views.worker_check_create, name="worker-check-create"),
    path("worker-checks/<int:pk>/", views.worker_check_detail, name="worker-check-detail"),
]
