"""Endpoints a booting node's installer talks to. No login: the boot token in the path is the
credential. An unknown token is a 404 and learns nothing; an expired or revoked one a 410."""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from nodes.models import Node
from pinet.lifecycle import InvalidTransition

from . import selectors, services
from .models import BootToken, InstallJob

CHUNK = 1 << 20
# Files of an installer image a client may fetch by name (kernel, initramfs).
INSTALLER_FILES = re.compile(r"^(vmlinuz|initrd\.img|kernel8\.img|kernel_2712\.img|initramfs8?|[\w.-]+\.dtb)$")


def _gone() -> JsonResponse:
    return JsonResponse({"error": "This boot token has expired or was revoked."}, status=410)


def _token(request, token: str) -> BootToken | JsonResponse:
    digest = services.boot_token_hash(token)[:24]
    key = f"pinet-boot-rate:{digest}:{int(timezone.now().timestamp() // 60)}"
    count = cache.get_or_set(key, 0, timeout=120)
    if count >= settings.PINET_BOOT_RATE_PER_MINUTE:
        return JsonResponse({"error": "Too many requests for this token; slow down."}, status=429)
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=120)
    try:
        return services.boot_token_resolve(token=token)
    except services.BootTokenUnknown:
        raise Http404 from None
    except services.BootTokenGone:
        return _gone()


def with_token(view):
    """Resolve the boot token in the URL before the view: an unknown one is a 404, an expired
    or revoked one a 410, a flood a 429; the view gets the live token row."""

    @functools.wraps(view)
    def wrapper(request, token: str, **kwargs):
        row = _token(request, token)
        if isinstance(row, JsonResponse):
            return row
        return view(request, row, token=token, **kwargs)

    return wrapper


def _url(row: BootToken, token: str, name: str = "") -> str:
    # The board reached us through its site's boot URL base: keep it on that path. Kept a few
    # seconds per process, like the plan: the hot path of a boot call is one query.
    key = f"pinet-boot-base:{row.token_hash}"
    base = cache.get(key)
    if base is None:
        base = Node.objects.select_related("site").get(pk=row.job.node_id).site.effective_boot_url_base
        cache.set(key, base, selectors.PLAN_CACHE_SECONDS)
    return f"{base}/boot/{token}/{name}"


def _wants_ipxe(request) -> bool:
    return request.GET.get("format") == "ipxe" or request.headers.get("User-Agent", "").startswith("iPXE/")


@csrf_exempt
@require_GET
@with_token
def plan(request, row: BootToken, token: str):
    """What to install where: the installer's first call."""
    job = row.job
    if _wants_ipxe(request):
        return HttpResponse(selectors.ipxe_install_script(job=job, base=_url(row, token)), content_type="text/plain")
    if request.GET.get("format") == "env":
        return HttpResponse(selectors.install_plan_env(job=job, base=_url(row, token)), content_type="text/plain")
    data = selectors.install_plan(job=job, base=_url(row, token))
    return JsonResponse(data | {"hostname": data["node"]["hostname"]})


def _open_range(request, path: Path):
    size = path.stat().st_size
    header = request.headers.get("Range", "")
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip()) if header else None
    if not match or (not match[1] and not match[2]):
        return 0, size - 1, size, False
    if match[1]:
        start, end = int(match[1]), int(match[2]) if match[2] else size - 1
    else:  # a suffix: the last N bytes
        start, end = max(0, size - int(match[2])), size - 1
    if start >= size or end < start:
        return None, None, size, True
    return start, min(end, size - 1), size, True


@csrf_exempt
@require_http_methods(["GET", "HEAD"])
@with_token
def image(request, row: BootToken, token: str):
    """The install artefact, streamed, with Range so an interrupted download resumes."""
    path = Path(row.job.image.artefact_path or "")
    if not path.is_file():
        return JsonResponse({"error": "The image's install artefact is missing on the server."}, status=503)
    start, end, size, ranged = _open_range(request, path)
    if start is None:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    job = row.job

    def chunks():
        # The board writes what it receives, so bytes served are its progress: report them
        # (every 5 %) as the job's "writing" stage, from here rather than from the agent.
        sent, reported = start, -5
        with open(path, "rb") as fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0:
                data = fh.read(min(CHUNK, left))
                if not data:
                    return
                left -= len(data)
                sent += len(data)
                if sent == size:
                    # The last byte of the image went out: the board may now report done.
                    InstallJob.objects.filter(pk=job.pk).update(artefact_served=True)
                percent = int(sent * 90 / size)  # the last 10 % are checking and finishing
                if percent >= reported + 5:
                    reported = percent
                    try:
                        services.install_job_event(
                            job=job, stage="writing", percent=percent, message=f"{sent:,} of {size:,} bytes sent"
                        )
                    except ValidationError:
                        return  # the job ended meanwhile (cancelled): stop sending
                yield data

    if not ranged:
        response = StreamingHttpResponse(
            chunks() if request.method == "GET" else iter(()), content_type="application/zstd"
        )
        response["Content-Length"] = str(size)
        response["Accept-Ranges"] = "bytes"
        return response

    response = StreamingHttpResponse(
        chunks() if request.method == "GET" else iter(()), status=206, content_type="application/zstd"
    )
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Length"] = str(end - start + 1)
    response["Accept-Ranges"] = "bytes"
    return response


@csrf_exempt
@require_GET
@with_token
def netplan(request, row: BootToken, token: str):
    return HttpResponse(selectors.netplan_yaml(node=row.job.node), content_type="text/yaml")


@csrf_exempt
@require_GET
@with_token
def installer_file(request, row: BootToken, token: str, name: str):
    """Kernel and initramfs of the installer image, for iPXE's script."""
    installer = selectors.installer_for(node=row.job.node)
    if installer is None or not INSTALLER_FILES.match(name):
        raise Http404
    path = Path(installer.boot_path) / name
    if not path.is_file():
        raise Http404
    return FileResponse(open(path, "rb"), content_type="application/octet-stream")  # noqa: SIM115


def _body(request) -> dict:
    if not request.body:
        return {}
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError('The body must be JSON, e.g. {"stage": "writing", "percent": 45}.') from None
    if not isinstance(data, dict):
        raise ValidationError("The body must be a JSON object.")
    return data


@csrf_exempt
@require_POST
@with_token
def events(request, row: BootToken, token: str):
    """Progress from the installer: {"stage": "...", "percent": 0-100, "message": "..."}."""
    try:
        data = _body(request)
        stage = str(data.get("stage") or "").strip()
        if not stage:
            raise ValidationError('Give a stage, e.g. {"stage": "writing", "percent": 45}.')
        percent = data.get("percent")
        if percent is not None and (not isinstance(percent, (int, float)) or not math.isfinite(percent)):
            raise ValidationError("percent must be a number from 0 to 100.")
        event = services.install_job_event(
            job=row.job, stage=stage, percent=percent, message=str(data.get("message") or "")
        )
    except ValidationError as exc:
        return JsonResponse({"error": " ".join(exc.messages)}, status=400)
    return JsonResponse({"event": event.pk, "job": row.job_id}, status=201)


@csrf_exempt
@require_POST
@with_token
def done(request, row: BootToken, token: str):
    """The image is written: the node boots from its own storage from now on."""
    if not InstallJob.objects.filter(pk=row.job_id, artefact_served=True).exists():
        return JsonResponse(
            {"error": "The image has not been sent in full yet; fetch it before reporting done."}, status=409
        )
    try:
        job = services.install_job_finish(job=row.job, ok=True)
    except (InvalidTransition, ValidationError):
        return _gone()  # cancelled or timed out meanwhile
    return JsonResponse({"job": job.pk, "status": job.status, "boot_mode": "local"})


@csrf_exempt
@require_POST
@with_token
def failed(request, row: BootToken, token: str):
    try:
        data = _body(request)
    except ValidationError:
        data = {}
    reason = str(data.get("error") or "The installer reported a failure without a reason.")[:2000]
    try:
        job = services.install_job_finish(job=row.job, ok=False, error=f"installer: {reason}")
    except (InvalidTransition, ValidationError):
        return _gone()
    return JsonResponse({"job": job.pk, "status": job.status})


@require_GET
def ipxe_entry(request):
    """The one static iPXE script URL every iPXE client gets in DHCP (…/boot/ipxe/?mac=…):
    nodes with an install in progress chain their installer, everything else boots locally."""
    mac = request.GET.get("mac", "").replace("-", ":").lower()
    # The script carries the board's boot token, so only the board itself gets it: the
    # request must come from its reserved address (or its site's subnet when it has none).
    client = request.META.get("REMOTE_ADDR", "")
    if settings.PINET_BEHIND_TLS_PROXY and request.headers.get("X-Forwarded-For"):
        client = request.headers["X-Forwarded-For"].split(",")[0].strip()
    script = selectors.ipxe_entry_script(mac=mac, site_slug=request.GET.get("site", ""), client_ip=client)
    return HttpResponse(script, content_type="text/plain")


AGENT = Path(__file__).resolve().parent / "agent" / "pinet-agent.sh"


@require_GET
def agent(request):
    """The installer agent script (public: it holds no secret)."""
    return HttpResponse(AGENT.read_text(), content_type="text/x-shellscript")
