"""Request guards that apply to every view."""

from __future__ import annotations

from django.http import HttpResponseBadRequest, JsonResponse
from django.template.loader import render_to_string

NUL_MESSAGE = "The request contains a NUL character (\\u0000), which no field accepts; remove it and send again."


def _has_nul(request) -> bool:
    query = request.META.get("QUERY_STRING", "")
    if "\x00" in request.path or "\x00" in query or "%00" in query:
        return True
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return False
    content_type = request.META.get("CONTENT_TYPE", "")
    if content_type.startswith("multipart/"):
        # Uploaded files are binary; only the form's text fields are checked.
        return any("\x00" in value for values in request.POST.lists() for value in values[1])
    body = request.body
    return b"\x00" in body or b"\\u0000" in body.lower() or b"%00" in body


class RejectNulMiddleware:
    """PostgreSQL cannot store NUL in text, so a NUL anywhere in a parameter would surface as a
    database error (a 500) in whichever lookup meets it first. Refuse it up front with a 400
    that says what to fix, for the API, the boot endpoints and the panel alike."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _has_nul(request):
            if request.path.startswith(("/api/", "/boot/")):
                return JsonResponse({"detail": NUL_MESSAGE}, status=400)
            return HttpResponseBadRequest(render_to_string("400.html", {"reason": NUL_MESSAGE}, request=request))
        return self.get_response(request)
