"""One FilterSet per list, shared by the API and the dashboard (STYLE.md R11)."""

import datetime

import django_filters
from django.db.models import Q

from .choices import BoardModel, BootMode, DiscoveryStatus, NodeState, PowerActionKind, PowerActionStatus
from .models import AuditLog, DiscoveredBoard, Node, PowerAction
from .validators import normalize_mac


class NodeFilterSet(django_filters.FilterSet):
    site = django_filters.CharFilter(field_name="site__slug")
    tenant = django_filters.CharFilter(field_name="tenant__slug")
    state = django_filters.ChoiceFilter(choices=NodeState.choices, empty_label="any")
    boot_mode = django_filters.ChoiceFilter(choices=BootMode.choices, empty_label="any")
    board_model = django_filters.ChoiceFilter(choices=BoardModel.choices, empty_label="any")
    q = django_filters.CharFilter(method="search", label="Host name, MAC (any spelling) or serial")

    class Meta:
        model = Node
        fields = ["site", "tenant", "state", "boot_mode", "board_model", "q"]

    def search(self, queryset, name, value):
        value = value.strip()
        condition = Q(hostname__icontains=value) | Q(serial__icontains=value.lower())
        try:
            condition |= Q(mac=normalize_mac(value))
        except Exception:  # not a MAC: the other fields still match
            condition |= Q(mac__icontains=value.lower())
        return queryset.filter(condition)


class DiscoveredBoardFilterSet(django_filters.FilterSet):
    site = django_filters.CharFilter(field_name="site__slug")
    status = django_filters.ChoiceFilter(choices=DiscoveryStatus.choices)
    board_model = django_filters.ChoiceFilter(choices=BoardModel.choices)
    is_pi = django_filters.BooleanFilter()
    q = django_filters.CharFilter(method="search", label="MAC (any spelling) or serial")

    class Meta:
        model = DiscoveredBoard
        fields = ["site", "status", "board_model", "is_pi", "q"]

    def search(self, queryset, name, value):
        value = value.strip()
        condition = Q(serial__icontains=value.lower())
        try:
            condition |= Q(mac=normalize_mac(value))
        except Exception:  # not a whole MAC: a part of one still matches
            condition |= Q(mac__icontains=value.lower())
        return queryset.filter(condition)


class AuditLogFilterSet(django_filters.FilterSet):
    action = django_filters.CharFilter(field_name="action", lookup_expr="startswith", label="Action (prefix)")
    actor = django_filters.CharFilter(field_name="actor_label", lookup_expr="icontains")
    object_type = django_filters.CharFilter()
    object_id = django_filters.CharFilter()
    q = django_filters.CharFilter(field_name="object_repr", lookup_expr="icontains", label="Object name")
    since = django_filters.IsoDateTimeFilter(method="created_since", label="Created at or after (ISO 8601)")

    class Meta:
        model = AuditLog
        fields = ["action", "actor", "object_type", "object_id", "q", "since"]

    def created_since(self, queryset, name, value):
        # In UTC: PostgreSQL refuses offsets past ±15:59, which ISO 8601 (and Python) allow.
        return queryset.filter(created__gte=value.astimezone(datetime.UTC))


class PowerActionFilterSet(django_filters.FilterSet):
    # Bounded: a huge number is a 400, not an integer overflow in the database driver.
    node = django_filters.NumberFilter(field_name="node_id", min_value=1, max_value=2**63 - 1)
    status = django_filters.ChoiceFilter(choices=PowerActionStatus.choices)
    action = django_filters.ChoiceFilter(choices=PowerActionKind.choices)

    class Meta:
        model = PowerAction
        fields = ["node", "status", "action"]
