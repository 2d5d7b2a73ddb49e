from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from images.api.views import OSImageViewSet
from nodes.api.views import (
    ApiKeyViewSet,
    AuditLogViewSet,
    DiscoveredBoardViewSet,
    NodeViewSet,
    PowerActionViewSet,
    SiteViewSet,
    TenantViewSet,
    WebhookViewSet,
)
from provisioning.api.views import ConfigRevisionViewSet, InstallJobViewSet

router = DefaultRouter()
router.register("sites", SiteViewSet, basename="site")
router.register("tenants", TenantViewSet, basename="tenant")
router.register("nodes", NodeViewSet, basename="node")
router.register("images", OSImageViewSet, basename="image")
router.register("install-jobs", InstallJobViewSet, basename="install-job")
router.register("config-revisions", ConfigRevisionViewSet, basename="config-revision")
router.register("audit-log", AuditLogViewSet, basename="audit-log")
router.register("api-keys", ApiKeyViewSet, basename="api-key")
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("power-actions", PowerActionViewSet, basename="power-action")
router.register("discovered-boards", DiscoveredBoardViewSet, basename="discovered-board")

urlpatterns = [
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
