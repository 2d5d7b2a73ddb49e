"""Helpers the panel's list pages share."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Page, Paginator


def filtered_page(request, filterset_class, queryset, *, size: int = 50, defaults: dict | None = None):
    """One page of ``queryset`` filtered by the request's query with the API's FilterSet, as
    (page, filter form, query string without ``page``, for pager and form links). A filter
    that cannot be read is reported and dropped: the page shows the unfiltered list."""
    data = request.GET.copy()
    for key, value in (defaults or {}).items():
        data.setdefault(key, value)
    filters = filterset_class(data, queryset=queryset)
    if not filters.is_valid():
        problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in filters.errors.items())
        messages.error(request, f"Ignored a filter it could not read: {problems}")
        filters = filterset_class(dict(defaults or {}), queryset=queryset)
    page: Page = Paginator(filters.qs, size).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return page, filters.form, query.urlencode()
