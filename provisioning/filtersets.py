"""FilterSets shared by the API and the panel pages (STYLE.md R11)."""

import django_filters
from django.db.models import Q

from nodes.choices import DhcpBackend

from .choices import ACTIVE, InstallJobStatus, RevisionStatus
from .models import ConfigRevision, InstallJob


class InstallJobFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=InstallJobStatus.choices, empty_label="any")
    active = django_filters.BooleanFilter(method="only_active", label="Pending or running")
    site = django_filters.CharFilter(field_name="node__site__slug")
    tenant = django_filters.CharFilter(field_name="node__tenant__slug")
    node = django_filters.NumberFilter(field_name="node_id", min_value=1, max_value=2**63 - 1)
    q = django_filters.CharFilter(method="search", label="Board host name or MAC")

    class Meta:
        model = InstallJob
        fields = ["status", "active", "site", "tenant", "node", "q"]

    def only_active(self, queryset, name, value):
        return queryset.filter(status__in=sorted(ACTIVE)) if value else queryset.exclude(status__in=sorted(ACTIVE))

    def search(self, queryset, name, value):
        value = value.strip().lower()
        return queryset.filter(Q(node__hostname__icontains=value) | Q(node__mac__icontains=value))


class ConfigRevisionFilterSet(django_filters.FilterSet):
    site = django_filters.CharFilter(field_name="site__slug")
    status = django_filters.ChoiceFilter(choices=RevisionStatus.choices, empty_label="any")
    backend = django_filters.ChoiceFilter(choices=DhcpBackend.choices, empty_label="any")

    class Meta:
        model = ConfigRevision
        fields = ["site", "status", "backend"]
