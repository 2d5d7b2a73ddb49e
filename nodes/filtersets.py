"""One FilterSet per list, shared by the API and the dashboard (STYLE.md R11)."""

import django_filters
from django.db.models import Q

from .choices import BoardModel, BootMode, DiscoveryStatus, NodeState
from .models import DiscoveredBoard, Node
from .validators import normalize_mac


class NodeFilterSet(django_filters.FilterSet):
    site = django_filters.CharFilter(field_name="site__slug")
    tenant = django_filters.CharFilter(field_name="tenant__slug")
    state = django_filters.ChoiceFilter(choices=NodeState.choices)
    boot_mode = django_filters.ChoiceFilter(choices=BootMode.choices)
    board_model = django_filters.ChoiceFilter(choices=BoardModel.choices)
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
