from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import selectors, services
from .choices import Arch, ImageState


def _images(request):
    return selectors.image_list(user=request.user).order_by("-created", "-pk")[:100]


@staff_member_required
@require_GET
def image_list(request):
    """Operators' images: versions, live import progress, and the import form."""
    return render(request, "images/image_list.html", {"images": _images(request), "arches": Arch.choices})


@staff_member_required
@require_GET
def image_rows(request):
    images = list(_images(request))
    response = render(request, "images/_rows.html", {"images": images})
    if not any(i.state in (ImageState.PENDING, ImageState.IMPORTING) for i in images):
        response.status_code = 286  # htmx: nothing is importing, stop polling
    return response


@staff_member_required
@require_POST
def image_import(request):
    name, arch = request.POST.get("name", "").strip(), request.POST.get("arch", "")
    source, sha256 = request.POST.get("source", "").strip(), request.POST.get("sha256", "").strip().lower()
    upload = request.FILES.get("file")
    try:
        if bool(upload) == bool(source):
            raise ValidationError("Give either a URL or server path, or a file to upload.")
        if upload:
            image = services.image_create_from_upload(
                by=request.user, name=name, arch=arch, upload=upload, sha256=sha256
            )
        else:
            with transaction.atomic():
                image = services.image_create(by=request.user, name=name, arch=arch, source=source, sha256=sha256)
                services.image_import_request(image=image)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Importing {image}; the list below follows its progress.")
    return redirect("images-page")
