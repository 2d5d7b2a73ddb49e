"""What every API view shares: permissions by role, errors as 4xx with field messages, the
Idempotency-Key middleware."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from rest_framework import permissions
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.views import exception_handler as drf_exception_handler

from pinet.lifecycle import InvalidTransition


def role(user) -> str:
    """operator | billing | customer (a tenant member or a tenant key) | anonymous"""
    if not (user and user.is_authenticated and user.is_active):
        return "anonymous"
    scope = getattr(user, "scope", None)
    if scope == "billing":
        return "billing"
    if scope == "operator" or (scope is None and user.is_staff):
        return "operator"
    return "customer"


class IsOperator(permissions.BasePermission):
    def has_permission(self, request, view):
        return role(request.user) == "operator"


class IsOperatorOrBilling(permissions.BasePermission):
    def has_permission(self, request, view):
        return role(request.user) in ("operator", "billing")


class ReadAnyWriteOperator(permissions.BasePermission):
    """Reading follows visible_to; writing is for operators."""

    def has_permission(self, request, view):
        if role(request.user) == "anonymous":
            return False
        return request.method in permissions.SAFE_METHODS or role(request.user) == "operator"


def exception_handler(exc, context):
    """Django's ValidationError, a database rule and a refused transition are the client's
    problem: 400/409 with a message saying what to fix, never a 500."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = ValidationError(detail)
    elif isinstance(exc, IntegrityError):
        exc = ValidationError({"detail": ["The change conflicts with existing data."]})
    elif isinstance(exc, InvalidTransition):
        response = JsonResponse({"detail": str(exc)}, status=409)
        return response
    return drf_exception_handler(exc, context)


class Idempotent:
    """Viewset mixin: a POST with an Idempotency-Key header is answered once; the same key and
    body from the same caller replay that answer (Idempotent-Replay: true), the same key with
    another body is a 422. Keyed by the authenticated caller (an API key or a user), so nobody
    replays another's answer; anonymous calls and uploads are not recorded; records last a day."""

    IDEMPOTENCY_TTL = timedelta(hours=24)
    STALE_RUN = timedelta(minutes=10)

    def dispatch(self, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key", "").strip()
        if request.method != "POST" or not key or request.content_type.startswith("multipart/"):
            return super().dispatch(request, *args, **kwargs)
        if len(key) > 200:
            return JsonResponse({"detail": "Idempotency-Key is longer than 200 characters."}, status=400)
        try:
            user = self.initialize_request(request, *args, **kwargs).user
        except APIException:
            return super().dispatch(request, *args, **kwargs)  # DRF answers the 401 itself
        if getattr(user, "key", None) is not None:
            principal = f"key:{user.key.pk}"
        elif getattr(user, "pk", None) is not None and user.is_authenticated:
            principal = f"user:{user.pk}"
        else:
            return super().dispatch(request, *args, **kwargs)
        from nodes.models import IdempotencyRecord

        now = timezone.now()
        IdempotencyRecord.objects.filter(created__lt=now - self.IDEMPOTENCY_TTL).delete()
        digest = hashlib.sha256(request.path.encode() + b"\0" + request.body).hexdigest()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(principal=principal, key=key, request_hash=digest)
        except IntegrityError:
            record = IdempotencyRecord.objects.get(principal=principal, key=key)
            if record.request_hash != digest:
                return JsonResponse(
                    {"detail": "This Idempotency-Key was used with a different request; use a new key."}, status=422
                )
            if record.status == 0 and record.created > now - self.STALE_RUN:
                return JsonResponse({"detail": "A request with this Idempotency-Key is still running."}, status=409)
            if record.status:
                replay = HttpResponse(bytes(record.body), status=record.status, content_type=record.content_type)
                replay["Idempotent-Replay"] = "true"
                return replay
            # A first attempt that died mid-way: this one takes its place.
        response = super().dispatch(request, *args, **kwargs)
        if hasattr(response, "render") and not getattr(response, "is_rendered", True):
            response.render()
        if response.status_code >= 500:
            IdempotencyRecord.objects.filter(pk=record.pk).delete()  # let the client try again
            return response
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            status=response.status_code, body=response.content, content_type=response.get("Content-Type", "")
        )
        return response


ERROR_RESPONSES = {
    "400": "The request is invalid; the body names each field and what to fix.",
    "401": "No valid API key or session.",
    "403": "Authenticated, but this role may not do that.",
    "404": "No such object, or it belongs to another tenant.",
    "405": "Method not allowed here.",
    "406": "Not an acceptable content type.",
    "409": "The object's state does not allow that now.",
    "415": "Unsupported body content type.",
    "422": "The Idempotency-Key was used with a different request.",
    "429": "Too many requests.",
}


def document_errors(result, generator, request, public):
    """drf-spectacular post-processing: every operation may answer with these errors, each a
    JSON object (usually {"detail": "..."} or {"field": ["message", ...]})."""
    error_schema = {"type": "object", "additionalProperties": True}
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_RESPONSES.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": error_schema}},
                    },
                )
    return result
