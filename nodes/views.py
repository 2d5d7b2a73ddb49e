from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from . import selectors
from .filtersets import NodeFilterSet


@login_required
def dashboard(request):
    """Fleet overview: operators see every node, customers only their tenants' boards."""
    # The same FilterSet as the API: ?site=&tenant=&state=&boot_mode=&board_model=&q=
    nodes = NodeFilterSet(request.GET, queryset=selectors.node_list(user=request.user)).qs
    page = Paginator(nodes, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "nodes/dashboard.html",
        {
            "page": page,
            "state_counts": selectors.node_state_counts(user=request.user),
            "tenants": selectors.tenant_list(user=request.user),
        },
    )
