from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from pinet.lifecycle import InvalidTransition

from . import selectors, services
from .filtersets import NodeFilterSet
from .models import Node


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
            "overview": selectors.operator_overview(user=request.user),
        },
    )


def _node(request, pk: int) -> Node:
    try:
        return selectors.node_get(user=request.user, pk=pk)
    except Node.DoesNotExist:
        raise Http404("No such board.") from None  # another tenant's board: the same answer


def _errors(exc: ValidationError) -> str:
    return " ".join(exc.messages)


@login_required
@require_GET
def node_detail(request, pk: int):
    """A board: identity, how it boots, reinstall, and its jobs with their timelines."""
    node = _node(request, pk)
    jobs = list(selectors.node_jobs(user=request.user, node=node)[:20])
    return render(
        request,
        "nodes/node_detail.html",
        {
            "node": node,
            "jobs": jobs,
            "active": next((j for j in jobs if j.is_active), None),
            "images": selectors.installable_images(user=request.user, node=node),
        },
    )


@login_required
@require_GET
def node_progress(request, pk: int):
    """The live part of the board page (htmx polls it while a job runs)."""
    node = _node(request, pk)
    jobs = list(selectors.node_jobs(user=request.user, node=node)[:1])
    job = jobs[0] if jobs else None
    response = render(request, "nodes/_progress.html", {"node": node, "job": job})
    if job is None or not job.is_active:
        response.status_code = 286  # htmx: stop polling, the job has ended
    return response


@login_required
@require_POST
def node_boot_mode(request, pk: int):
    node = _node(request, pk)
    mode = request.POST.get("boot_mode", "")
    try:
        services.node_set_boot_mode(node=node, mode=mode, by=request.user)
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        label = "its SD card / disk" if mode == "local" else "the network"
        messages.success(request, f"{node.hostname} now boots from {label}; the boot server is being updated.")
    return redirect("node-detail", pk=node.pk)


@login_required
@require_POST
def node_reinstall(request, pk: int):
    from provisioning.services import node_request_reinstall

    node = _node(request, pk)
    if request.POST.get("confirm", "").strip().lower() != node.hostname:
        messages.error(request, f"Type the board's name ({node.hostname}) to confirm: a reinstall erases it.")
        return redirect("node-detail", pk=node.pk)
    image = next(
        (
            i
            for i in selectors.installable_images(user=request.user, node=node)
            if str(i.pk) == request.POST.get("image")
        ),
        None,
    )
    if image is None:
        messages.error(request, "Pick one of the images offered for this board.")
        return redirect("node-detail", pk=node.pk)
    try:
        job = node_request_reinstall(node=node, image=image, by=request.user)
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        messages.success(request, f"Reinstall of {image} started (job {job.pk}); it begins when the board reboots.")
    return redirect("node-detail", pk=node.pk)


@login_required
@require_POST
def job_cancel(request, pk: int, job_id: int):
    from provisioning.services import install_job_cancel

    node = _node(request, pk)
    job = next((j for j in selectors.node_jobs(user=request.user, node=node) if j.pk == job_id), None)
    if job is None:
        raise Http404("No such job.")
    try:
        install_job_cancel(job=job, by=request.user)
    except InvalidTransition:
        messages.error(request, f"Job {job.pk} ended meanwhile.")
        return redirect("node-detail", pk=node.pk)
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        messages.success(request, f"Job {job.pk} cancelled; {node.hostname} boots as before.")
    return redirect("node-detail", pk=node.pk)
