from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from pinet.lifecycle import InvalidTransition
from pinet.pages import filtered_page
from provisioning.selectors import node_boot_config

from . import discovery_services, selectors, services
from .choices import BoardModel
from .filtersets import AuditLogFilterSet, DiscoveredBoardFilterSet, NodeFilterSet
from .models import DiscoveredBoard, Node
from .power import selectors as power_selectors
from .power.services import PowerRateLimited, node_power


@login_required
def dashboard(request):
    """Fleet overview: operators see every node, customers only their tenants' boards."""
    # The same FilterSet as the API: ?site=&tenant=&state=&boot_mode=&board_model=&q=
    page, form, query = filtered_page(request, NodeFilterSet, selectors.node_list(user=request.user), size=PAGE_SIZE)
    context = {
        "page": page,
        "filters": form,
        "query": query,
        "state_counts": selectors.node_state_counts(user=request.user),
        "tenants": selectors.tenant_list(user=request.user),
        "overview": selectors.operator_overview(user=request.user),
    }
    if request.user.is_staff:
        context["sites"] = selectors.site_list(user=request.user)
        context["bulk_images"] = selectors.bulk_images(user=request.user)
    return render(request, "nodes/dashboard.html", context)


@login_required
@require_POST
def node_bulk(request):
    """Operators: one action on the boards ticked in the fleet table."""
    back = redirect(f"{reverse('dashboard')}?{request.POST.get('query', '')}")
    if not request.user.is_staff:
        raise Http404("No such page.")
    ids = [pk for pk in map(_pk, request.POST.getlist("node")) if pk is not None]
    nodes = list(selectors.node_list(user=request.user).filter(pk__in=ids[: services.BULK_MAX + 1]))
    action = request.POST.get("action", "")
    image = tenant = None
    if action == "reinstall":
        wanted = request.POST.get("image")
        image = next((i for i in selectors.bulk_images(user=request.user) if str(i.pk) == wanted), None)
    # Both erase or reboot boards (a boot-mode switch power-cycles through the driver).
    if action in ("reinstall", "boot_mode") and nodes and request.POST.get("confirm", "").strip() != str(len(nodes)):
        what = "a reinstall erases them" if action == "reinstall" else "boards with a power driver are rebooted"
        messages.error(request, f"Type the number of boards ticked ({len(nodes)}) to confirm: {what}.")
        return back
    if action == "assign":
        tenant = selectors.tenant_list(user=request.user).filter(slug=request.POST.get("tenant", "")).first()
    try:
        outcome = services.node_bulk_action(
            nodes=nodes,
            action=action,
            by=request.user,
            boot_mode=request.POST.get("boot_mode", ""),
            image=image,
            tenant=tenant,
        )
    except ValidationError as exc:
        messages.error(request, _errors(exc))
        return back
    if outcome.done:
        names = ", ".join(outcome.done[:20]) + (", …" if len(outcome.done) > 20 else "")
        messages.success(request, f"{BULK_DONE[action]} on {len(outcome.done)} board(s): {names}.")
    for hostname, why in outcome.refused[:20]:
        messages.error(request, f"{hostname}: {why}")
    if len(outcome.refused) > 20:
        messages.error(request, f"… and {len(outcome.refused) - 20} more refused.")
    return back


BULK_DONE = {
    "boot_mode": "Boot mode changed",
    "reinstall": "Reinstall started (each begins when its board reboots)",
    "assign": "Tenant assigned",
    "release": "Released from their tenant",
}
PAGE_SIZE = 50


def _node(request, pk: int) -> Node:
    try:
        return selectors.node_get(user=request.user, pk=pk)
    except Node.DoesNotExist:
        raise Http404("No such board.") from None  # another tenant's board: the same answer


def _pk(text: str) -> int | None:
    """A primary key from a form value, or None: ASCII digits only ("²".isdigit() is true),
    and within a 64-bit integer, so odd input is a refusal rather than a database error."""
    text = (text or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


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
            # The whole site's configuration is operators' business; a customer sees how it boots.
            "boot_config": node_boot_config(node=node) if request.user.is_staff else None,
            "power_actions": list(power_selectors.power_action_list(user=request.user).filter(node=node)[:5]),
            "power_state": power_selectors.node_power_state(node=node),
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


@login_required
@require_GET
def audit_log(request):
    """Operators: who did what, newest first, filterable like the API's /api/audit-log/."""
    if not request.user.is_staff:
        raise Http404("No such page.")
    page, form, query = filtered_page(request, AuditLogFilterSet, selectors.audit_log_list(user=request.user), size=100)
    return render(request, "nodes/audit_log.html", {"page": page, "filters": form, "query": query})


@login_required
@require_POST
def node_power_action(request, pk: int):
    """Power-cycle (customers and operators) or switch on/off/read (operators) through the
    board's driver; the action runs on the site's worker and shows up in the list."""
    node = _node(request, pk)
    action = request.POST.get("action", "")
    allowed = ("cycle", "on", "off", "status") if request.user.is_staff else ("cycle",)
    if action not in allowed:
        messages.error(request, f"Choose one of: {', '.join(allowed)}.")
        return redirect("node-detail", pk=node.pk)
    try:
        row = node_power(node=node, action=action, by=request.user, reason="from the board page")
    except PowerRateLimited as exc:
        messages.error(request, f"{exc} Try again in {int(exc.retry_after) + 1} s.")
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        if row.status == "manual":
            messages.info(request, row.detail)
        else:
            messages.success(request, f"Power {action} of {node.hostname} queued; its result appears below.")
    return redirect("node-detail", pk=node.pk)


# --- Discovered boards (operators) --------------------------------------------------------------


def _board(request, pk: int):
    if not request.user.is_staff:
        raise Http404("No such page.")
    try:
        return selectors.discovered_board_get(user=request.user, pk=pk)
    except DiscoveredBoard.DoesNotExist:
        raise Http404("No such discovered board.") from None


@login_required
@require_GET
def discovered_list(request):
    """Boards that asked for a network boot and are no node yet: adopt or ignore them."""
    if not request.user.is_staff:
        raise Http404("No such page.")
    page, form, query = filtered_page(
        request,
        DiscoveredBoardFilterSet,
        selectors.discovered_board_list(user=request.user),
        size=PAGE_SIZE,
        defaults={"status": "new"},
    )
    return render(
        request,
        "nodes/discovered_list.html",
        {
            "page": page,
            "filters": form,
            "query": query,
            "sites": selectors.site_list(user=request.user),
        },
    )


@login_required
def discovered_adopt(request, pk: int):
    """The adopt form: suggested host name and next free address, tenant, boot mode, image."""
    from images.models import OSImage

    board = _board(request, pk)
    tenants = selectors.tenant_list(user=request.user)
    images = OSImage.objects.visible_to(request.user).filter(state="ready", kind="os").order_by("name", "-version")
    form = {
        "hostname": selectors.hostname_suggest(board=board),
        "ip": selectors.ip_next_free(site=board.site) or "",
        "tenant": "",
        "boot_mode": "local",
        "image": "",
        "board_model": board.board_model,
    }
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        form.update({k: request.POST.get(k, "").strip() for k in form})
        tenant = tenants.filter(slug=form["tenant"]).first() if form["tenant"] else None
        image = images.filter(pk=_pk(form["image"])).first() if _pk(form["image"]) else None
        if form["tenant"] and tenant is None:
            errors["tenant"] = ["Pick one of the tenants offered."]
        if form["image"] and image is None:
            errors["image"] = ["Pick one of the ready images offered."]
        if not errors:
            try:
                node = discovery_services.discovered_board_adopt(
                    board=board,
                    hostname=form["hostname"],
                    ip=form["ip"] or None,
                    tenant=tenant,
                    boot_mode=form["boot_mode"],
                    image=image,
                    board_model=form["board_model"] or None,
                    by=request.user,
                )
            except ValidationError as exc:
                errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            except InvalidTransition as exc:
                messages.error(request, str(exc))
                return redirect("discovered-list")
            else:
                messages.success(request, f"Adopted {board.mac} as {node.hostname}; the boot server is being updated.")
                return redirect("node-detail", pk=node.pk)
    return render(
        request,
        "nodes/discovered_adopt.html",
        {
            "board": board,
            "form": form,
            "errors": errors,
            # Errors not about one field (and fields the form does not show) go on top.
            "general_errors": [m for k, v in errors.items() if k not in form for m in v],
            "tenants": tenants,
            "images": images,
            "board_models": BoardModel.choices,
        },
    )


@login_required
@require_POST
def discovered_ignore(request, pk: int):
    board = _board(request, pk)
    undo = request.POST.get("undo") == "1"
    service = discovery_services.discovered_board_unignore if undo else discovery_services.discovered_board_ignore
    try:
        service(board=board, by=request.user)
    except InvalidTransition as exc:
        messages.error(request, str(exc))
    else:
        if undo:
            messages.success(request, f"{board.mac} is no longer ignored.")
        else:
            messages.success(request, f"Ignoring {board.mac}: it stays off the list until you un-ignore it.")
    return redirect(f"{reverse('discovered-list')}?{request.POST.get('query', '')}")
