from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.core import checks
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from nodes.selectors import site_list, site_queue_names
from pinet.lifecycle import InvalidTransition
from pinet.pages import filtered_page

from . import selectors, services
from .filtersets import ConfigRevisionFilterSet, InstallJobFilterSet
from .models import WorkerCheck


def _queues() -> list[str]:
    return ["default", "images", *site_queue_names()]


def _check_json(check: WorkerCheck) -> dict:
    return {
        "id": check.pk,
        "queue": check.queue,
        "created": check.created.isoformat(),
        "answered": check.answered_at is not None,
        "answered_at": check.answered_at.isoformat() if check.answered_at else None,
        "answered_by": check.answered_by,
        "url": reverse("worker-check-detail", args=[check.pk]),
    }


@staff_member_required
@require_GET
def status(request):
    """Operators' health page: configuration problems and whether workers answer."""
    problems = [message for message in checks.run_checks(tags=["pinet"]) if message.level >= checks.WARNING]
    recent = WorkerCheck.objects.all()[:10]
    return render(
        request,
        "provisioning/status.html",
        {
            "problems": problems,
            "checks": recent,
            "waiting": any(c.answered_at is None for c in recent),
            "queues": _queues(),
            "broker": settings.CELERY_BROKER_URL.split("://", 1)[0],
            "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        },
    )


@staff_member_required
@require_POST
def worker_check_create(request):
    queue = request.POST.get("queue", "default")
    if queue not in _queues():
        if request.accepts("text/html"):
            messages.error(request, f"There is no queue called {queue!r}.")
            return redirect("status")
        return JsonResponse({"queue": [f"There is no queue called {queue!r}."]}, status=400)
    check = services.worker_check_request(queue=queue, by=request.user)
    if request.accepts("text/html"):
        messages.info(request, f"Sent a check through queue {queue}; this page updates when a worker answers.")
        return redirect("status")
    return JsonResponse(_check_json(check), status=202)


@staff_member_required
@require_GET
def worker_check_detail(request, pk: int):
    try:
        check = selectors.worker_check_get(user=request.user, pk=pk)
    except WorkerCheck.DoesNotExist:
        raise Http404("No such worker check.") from None
    return JsonResponse(_check_json(check))


# --- Jobs and configuration revisions (panel pages) ----------------------------------------


@login_required
@require_GET
def job_list(request):
    """Install jobs, live: operators see all, customers their tenants' boards' jobs."""
    page, form, query = filtered_page(request, InstallJobFilterSet, selectors.install_job_list(user=request.user))
    context = {"page": page, "query": query, "filters": form}
    template = "provisioning/_job_rows.html" if request.headers.get("HX-Request") else "provisioning/job_list.html"
    return render(request, template, context)


@login_required
@require_POST
def job_cancel(request, pk: int):
    job = selectors.install_job_list(user=request.user).filter(pk=pk).first()
    if job is None:
        raise Http404("No such job.")  # another tenant's job: the same answer
    try:
        services.install_job_cancel(job=job, by=request.user)
    except InvalidTransition:
        messages.error(request, f"Job {job.pk} ended meanwhile.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Job {job.pk} cancelled; {job.node.hostname} boots as it did before.")
    return redirect(f"{reverse('job-list')}?{request.POST.get('query', '')}")


@login_required
@require_GET
def revision_list(request):
    """Every site's configuration revisions, rejected ones with the daemon's message."""
    revisions = selectors.config_revision_list(user=request.user)
    if not request.user.is_staff:
        raise Http404("No such page.")
    page, form, query = filtered_page(request, ConfigRevisionFilterSet, revisions.defer("content", "diff"))
    return render(
        request,
        "provisioning/revision_list.html",
        {"page": page, "query": query, "filters": form, "sites": site_list(user=request.user)},
    )


@login_required
@require_GET
def revision_detail(request, pk: int):
    revision = selectors.config_revision_list(user=request.user).filter(pk=pk).first()
    if revision is None:
        raise Http404("No such configuration revision.")
    return render(
        request,
        "provisioning/revision_detail.html",
        {
            "revision": revision,
            "diff_lines": selectors.diff_lines(revision.diff),
            "content": selectors.mask_boot_tokens(revision.content),
            "validator_output": selectors.mask_boot_tokens(revision.validator_output),
        },
    )
