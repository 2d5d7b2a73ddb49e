"""One FilterSet per list, shared by the API and the dashboard (STYLE.md R11)."""

import django_filters
from django.db.models import Q

from .choices import BoardModel, BootMode, NodeState, PowerActionKind, PowerActionStatus
from .models import Node, PowerAction
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


class PowerActionFilterSet(django_filters.FilterSet):
    # Bounded: a huge number is a 400, not an integer overflow in the database driver.
    node = django_filters.NumberFilter(field_name="node_id", min_value=1, max_value=2**63 - 1)
    status = django_filters.ChoiceFilter(choices=PowerActionStatus.choices)
    action = django_filters.ChoiceFilter(choices=PowerActionKind.choices)

    class Meta:
        model = PowerAction
        fields = ["node", "status", "action"]
