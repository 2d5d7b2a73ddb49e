from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core import checks
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from nodes.selectors import site_queue_names

from . import selectors, services
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
