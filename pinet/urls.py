from django.contrib import admin
from django.urls import include, path

from . import views

admin.site.site_header = "pinet administration"
admin.site.site_title = "pinet admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("", include("provisioning.urls")),
    path("images/", include("images.urls")),
    path("boot/", include("provisioning.boot_urls")),
    path("api/", include("pinet.api_urls")),
    path("", include("nodes.urls")),
]

handler404 = "pinet.views.not_found"
handler500 = "pinet.views.server_error"
