"""API for sites, tenants, nodes, API keys and the audit log. Views translate; services act."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from images.models import OSImage
from nodes import apikeys, discovery_services, selectors, services
from nodes.choices import NodeState, PowerActionKind, PowerActionStatus
from nodes.filtersets import AuditLogFilterSet, DiscoveredBoardFilterSet, NodeFilterSet, PowerActionFilterSet
from nodes.models import ApiKey, Node, Tenant, WebhookEndpoint
from nodes.power import selectors as power_selectors
from nodes.power.services import PowerRateLimited, node_power, node_power_set
from pinet.api import Idempotent, IsOperator, IsOperatorOrBilling, ReadAnyWriteOperator, role

from . import serializers as s


class SiteViewSet(Idempotent, viewsets.ModelViewSet):
    serializer_class = s.SiteSerializer
    permission_classes = [ReadAnyWriteOperator]
    lookup_field = "slug"

    def get_queryset(self):
        return selectors.site_list(user=self.request.user)

    def perform_create(self, serializer):
        serializer.instance = services.site_create(by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.site_update(
            site=serializer.instance, by=self.request.user, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        if instance.nodes.exists():
            raise PermissionDenied("Move or delete the site's nodes first.")
        instance.delete()


class TenantViewSet(Idempotent, viewsets.ModelViewSet):
    """Customer organisations. The billing system creates them and their users."""

    serializer_class = s.TenantSerializer
    lookup_field = "slug"

    def get_permissions(self):
        if self.action in ("list", "retrieve"):
            return [ReadAnyWriteOperator()]
        return [IsOperatorOrBilling()]

    def get_queryset(self):
        return selectors.tenant_list(user=self.request.user)

    def perform_create(self, serializer):
        serializer.instance = services.tenant_create(by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        tenant = serializer.instance
        for field, value in serializer.validated_data.items():
            setattr(tenant, field, value)
        services.validated_save(tenant, list(serializer.validated_data))
        services.audit_log_write(
            actor=self.request.user,
            action="tenant.update",
            obj=tenant,
            data={"fields": sorted(serializer.validated_data)},
        )

    @extend_schema(request=s.TenantUserSerializer, responses={201: s.TenantUserSerializer})
    @action(detail=True, methods=["post"], url_path="users")
    def users(self, request, slug=None):
        """Create a customer user (or add an existing one) in this tenant."""
        tenant = self.get_object()
        data = s.TenantUserSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        User = get_user_model()
        username = data.validated_data["username"]
        with transaction.atomic():
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User(username=username, email=data.validated_data.get("email", ""))
                user.full_clean(exclude=["password"])
                if data.validated_data.get("password"):
                    user.set_password(data.validated_data["password"])
                else:
                    user.set_unusable_password()
                user.save()
            elif user.is_staff or not data.validated_data.get("existing"):
                # Never silently hand someone else's account (or an operator's) to a tenant.
                return Response(
                    {
                        "username": [
                            'That user name is taken; pick another, or send "existing": '
                            "true to add an existing customer account."
                        ]
                    },
                    status=409,
                )
            services.tenant_member_add(tenant=tenant, user=user, by=request.user)
        return Response({"username": user.username}, status=status.HTTP_201_CREATED)


class NodeViewSet(Idempotent, viewsets.ModelViewSet):
    """Boards. State changes are POST actions on the board; reinstall answers 202 with the job."""

    serializer_class = s.NodeSerializer
    permission_classes = [ReadAnyWriteOperator]
    filter_backends = [DjangoFilterBackend]
    filterset_class = NodeFilterSet

    def get_permissions(self):
        # State-change actions: whoever sees the board (customers their own); the action
        # itself checks the role where it needs more.
        if self.action in (
            *("reinstall", "boot_mode", "power_cycle", "power", "power_settings"),
            *("assign", "release", "suspend", "resume"),
        ):
            return [IsAuthenticated()]
        return super().get_permissions()

    def get_queryset(self):
        return selectors.node_list(user=self.request.user)

    def perform_create(self, serializer):
        serializer.instance = services.node_create(by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.node_update(
            node=serializer.instance, by=self.request.user, **serializer.validated_data
        )

    def _billing(self):
        if role(self.request.user) not in ("operator", "billing"):
            raise PermissionDenied("Only operators and the billing system may do that.")

    @extend_schema(request=s.ReinstallSerializer, responses={202: None})
    @action(detail=True, methods=["post"])
    def reinstall(self, request, pk=None):
        from provisioning.api.serializers import InstallJobSerializer
        from provisioning.services import node_request_reinstall

        node = self.get_object()
        data = s.ReinstallSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        image = OSImage.objects.visible_to(request.user).filter(pk=data.validated_data["image"]).first()
        if image is None:
            return Response({"image": ["No such image."]}, status=status.HTTP_400_BAD_REQUEST)
        job = node_request_reinstall(node=node, image=image, by=request.user)
        return Response(InstallJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.BootModeSerializer, responses={202: s.NodeSerializer})
    @action(detail=True, methods=["post"], url_path="boot-mode")
    def boot_mode(self, request, pk=None):
        node = self.get_object()
        data = s.BootModeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.node_set_boot_mode(node=node, mode=data.validated_data["boot_mode"], by=request.user)
        return Response(s.NodeSerializer(Node.objects.get(pk=node.pk)).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.AssignSerializer, responses={200: s.NodeSerializer})
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        node = self.get_object()  # first: another tenant's board is a 404, not a 403
        self._billing()
        data = s.AssignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = Tenant.objects.filter(slug=data.validated_data["tenant"]).first()
        if tenant is None:
            return Response({"tenant": [f"No tenant {data.validated_data['tenant']!r}."]}, status=400)
        services.node_update(node=node, by=request.user, tenant=tenant)
        return Response(s.NodeSerializer(Node.objects.get(pk=node.pk)).data)

    @extend_schema(request=None, responses={200: s.NodeSerializer})
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        node = self.get_object()  # first: another tenant's board is a 404, not a 403
        self._billing()
        services.node_update(node=node, by=request.user, tenant=None)
        return Response(s.NodeSerializer(Node.objects.get(pk=node.pk)).data)

    @extend_schema(request=None, responses={200: s.NodeSerializer})
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        node = self.get_object()  # first: another tenant's board is a 404, not a 403
        self._billing()
        if node.state != NodeState.SUSPENDED:
            services.node_transition(node=node, to=NodeState.SUSPENDED, by=request.user, reason="suspended by API")
        return Response(s.NodeSerializer(Node.objects.get(pk=node.pk)).data)

    @extend_schema(request=None, responses={200: s.NodeSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        node = self.get_object()  # first: another tenant's board is a 404, not a 403
        self._billing()
        if node.state == NodeState.SUSPENDED:
            services.node_transition(node=node, to=NodeState.READY, by=request.user, reason="resumed by API")
        return Response(s.NodeSerializer(Node.objects.get(pk=node.pk)).data)

    def _power(self, request, action: str) -> Response:
        node = self.get_object()  # first: another tenant's board is a 404
        try:
            row = node_power(node=node, action=action, by=request.user, reason="API request")
        except PowerRateLimited as exc:
            return Response({"detail": str(exc)}, status=429, headers={"Retry-After": str(exc.retry_after)})
        data = s.PowerActionSerializer(row, context=self.get_serializer_context()).data
        if row.status == PowerActionStatus.MANUAL:
            return Response({"detail": row.detail, "power_action": data}, status=status.HTTP_409_CONFLICT)
        return Response(data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=None,
        responses={202: s.PowerActionSerializer, 409: s.PowerManualSerializer},
        description="Power-cycle the board through its driver (answered at once; a worker does it). 409: the "
        "board has the manual driver and the answer says what a person must do. 429: too soon after the "
        "last power change (Retry-After says when).",
    )
    @action(detail=True, methods=["post"], url_path="power-cycle")
    def power_cycle(self, request, pk=None):
        return self._power(request, PowerActionKind.CYCLE)

    @extend_schema(
        request=s.PowerRequestSerializer,
        responses={202: s.PowerActionSerializer, 409: s.PowerManualSerializer},
        description="Switch the board on or off, power-cycle it, or read its power state; as power-cycle.",
    )
    @action(detail=True, methods=["post"])
    def power(self, request, pk=None):
        data = s.PowerRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._power(request, data.validated_data["action"])

    @extend_schema(methods=["GET"], request=None, responses={200: s.PowerSettingsStateSerializer})
    @extend_schema(methods=["PUT"], request=s.PowerSettingsSerializer, responses={200: s.PowerSettingsStateSerializer})
    @action(detail=True, methods=["get", "put"], url_path="power-settings")
    def power_settings(self, request, pk=None):
        """The board's power driver and parameters (operators only). Secrets are write-only."""
        node = self.get_object()  # first: another tenant's board is a 404, not a 403
        if role(request.user) != "operator":
            raise PermissionDenied("Only operators may see or change power settings.")
        if request.method == "PUT":
            data = s.PowerSettingsSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            node = node_power_set(
                node=node,
                driver=data.validated_data["driver"],
                params=data.validated_data.get("params") or {},
                secrets=data.validated_data.get("secrets"),
                by=request.user,
            )
        state = power_selectors.node_power_settings(node=node)
        return Response({"driver": state["driver"], "params": state["params"], "secrets_state": state["secrets"]})


class PowerActionViewSet(viewsets.ReadOnlyModelViewSet):
    """Power actions: who asked for what on which board, and what the switch or plug did."""

    serializer_class = s.PowerActionSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = PowerActionFilterSet

    def get_queryset(self):
        return power_selectors.power_action_list(user=self.request.user)


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Operators' API keys: created here (the key is in the response, once) and revoked."""

    serializer_class = s.ApiKeySerializer
    permission_classes = [IsOperator]
    queryset = ApiKey.objects.select_related("tenant")

    @extend_schema(request=s.ApiKeyCreateSerializer, responses={201: None})
    def create(self, request):
        data = s.ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        scope, _, slug = data.validated_data["scope"].partition(":")
        tenant = get_object_or_404(Tenant, slug=slug) if scope == "tenant" else None
        key, row = apikeys.api_key_create(
            name=data.validated_data["name"],
            scope=scope,
            tenant=tenant,
            expires_at=data.validated_data.get("expires_at"),
            by=request.user,
        )
        return Response({**s.ApiKeySerializer(row).data, "key": key}, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.ApiKeySerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        return Response(s.ApiKeySerializer(apikeys.api_key_revoke(key=self.get_object(), by=request.user)).data)


class AuditLogViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = s.AuditLogSerializer
    permission_classes = [IsOperator]
    filter_backends = [DjangoFilterBackend]
    filterset_class = AuditLogFilterSet

    def get_queryset(self):
        return selectors.audit_log_list(user=self.request.user)


class WebhookViewSet(Idempotent, viewsets.ModelViewSet):
    """Endpoints that hear about events; each POST is signed (X-Pinet-Signature, see README)."""

    serializer_class = s.WebhookEndpointSerializer
    permission_classes = [IsOperatorOrBilling]
    queryset = WebhookEndpoint.objects.all()

    @extend_schema(responses={200: s.WebhookDeliverySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        page = self.paginate_queryset(self.get_object().deliveries.all())
        return self.get_paginated_response(s.WebhookDeliverySerializer(page, many=True).data)


class DiscoveredBoardViewSet(Idempotent, viewsets.ReadOnlyModelViewSet):
    """Boards heard asking for a network boot that are not nodes (operators only). Adopting one
    makes it a node (201 with the node); ignoring puts it on the site's blocklist."""

    permission_classes = [IsOperator]
    filter_backends = [DjangoFilterBackend]
    filterset_class = DiscoveredBoardFilterSet

    def get_queryset(self):
        return selectors.discovered_board_list(user=self.request.user)

    def get_serializer_class(self):
        return s.DiscoveredBoardDetailSerializer if self.action == "retrieve" else s.DiscoveredBoardSerializer

    @extend_schema(request=s.AdoptSerializer, responses={201: s.NodeSerializer})
    @action(detail=True, methods=["post"])
    def adopt(self, request, pk=None):
        board = self.get_object()
        data = s.AdoptSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        tenant = image = None
        if fields.get("tenant"):
            tenant = Tenant.objects.filter(slug=fields["tenant"]).first()
            if tenant is None:
                return Response({"tenant": [f"No tenant {fields['tenant']!r}."]}, status=status.HTTP_400_BAD_REQUEST)
        if fields.get("image") is not None:
            image = OSImage.objects.visible_to(request.user).filter(pk=fields["image"]).first()
            if image is None:
                return Response({"image": ["No such image."]}, status=status.HTTP_400_BAD_REQUEST)
        node = discovery_services.discovered_board_adopt(
            board=board,
            hostname=fields.get("hostname") or selectors.hostname_suggest(board=board),
            ip=fields["ip"] if "ip" in fields else selectors.ip_next_free(site=board.site),
            tenant=tenant,
            boot_mode=fields["boot_mode"],
            image=image,
            board_model=fields.get("board_model"),
            by=request.user,
        )
        return Response(s.NodeSerializer(node).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.DiscoveredBoardSerializer})
    @action(detail=True, methods=["post"])
    def ignore(self, request, pk=None):
        board = discovery_services.discovered_board_ignore(board=self.get_object(), by=request.user)
        return Response(s.DiscoveredBoardSerializer(board).data)

    @extend_schema(request=None, responses={200: s.DiscoveredBoardSerializer})
    @action(detail=True, methods=["post"])
    def unignore(self, request, pk=None):
        board = discovery_services.discovered_board_unignore(board=self.get_object(), by=request.user)
        return Response(s.DiscoveredBoardSerializer(board).data)
