from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from pinet.api import Idempotent, IsOperator, ReadAnyWriteOperator
from provisioning import selectors, services
from provisioning.filtersets import ConfigRevisionFilterSet, InstallJobFilterSet
from provisioning.models import ConfigRevision

from .serializers import ConfigRevisionSerializer, InstallJobSerializer


class InstallJobViewSet(Idempotent, viewsets.ReadOnlyModelViewSet):
    """Install jobs with their events; cancel is the only change."""

    serializer_class = InstallJobSerializer
    permission_classes = [ReadAnyWriteOperator]
    filter_backends = [DjangoFilterBackend]
    filterset_class = InstallJobFilterSet

    def get_permissions(self):
        if self.action == "cancel":
            from pinet.api import permissions

            return [permissions.IsAuthenticated()]
        return super().get_permissions()

    def get_queryset(self):
        return selectors.install_job_list(user=self.request.user).prefetch_related("events")

    @extend_schema(request=None, responses={202: InstallJobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = services.install_job_cancel(job=self.get_object(), by=request.user)
        return Response(InstallJobSerializer(job).data, status=202)


class ConfigRevisionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ConfigRevisionSerializer
    permission_classes = [IsOperator]
    queryset = ConfigRevision.objects.select_related("site")
    filter_backends = [DjangoFilterBackend]
    filterset_class = ConfigRevisionFilterSet
