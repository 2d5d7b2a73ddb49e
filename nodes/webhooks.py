"""Outgoing webhooks: events become delivery rows in the transaction that caused them, and
Celery sends them after commit, signed, with exponential retries. A request never waits on them."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from django.db import transaction
from django.utils import timezone

from .models import WebhookDelivery, WebhookEndpoint

MAX_ATTEMPTS = 8


class BlockedDestination(Exception):
    pass


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is reported as the endpoint's answer, never followed


# No proxies from the environment, no redirects: a webhook goes where its URL says, or nowhere.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def _check_destination(url: str) -> None:
    """Refuse loopback, private, link-local and other internal addresses (unless allowed), so a
    webhook cannot be pointed at pinet's own network."""
    from django.conf import settings

    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as exc:
        raise BlockedDestination(f"cannot resolve {host}: {exc}") from None
    if settings.PINET_WEBHOOK_ALLOW_PRIVATE:
        return
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise BlockedDestination(f"{host} resolves to {address}, which is not a public address")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """X-Pinet-Signature: sha256=HMAC-SHA256(secret, "<timestamp>.<body>") in hex."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def webhook_emit(*, event: str, data: dict) -> list[int]:
    """Record a delivery for every active endpoint that wants ``event``; sent after commit."""
    from .tasks import deliver_webhook_task

    ids = []
    for endpoint in WebhookEndpoint.objects.filter(active=True):
        if event in (endpoint.events or []):
            delivery = WebhookDelivery.objects.create(
                endpoint=endpoint,
                event=event,
                payload={"id": str(uuid.uuid4()), "event": event, "created": timezone.now().isoformat(), "data": data},
            )
            ids.append(delivery.pk)
    for delivery_id in ids:
        transaction.on_commit(lambda d=delivery_id: deliver_webhook_task.delay(d))
    return ids


def webhook_deliver(*, delivery_id: int) -> int | None:
    """Send one delivery. Returns the seconds to wait before the next attempt, or None when done."""
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id, status="pending").first()
    if delivery is None:
        return None
    body = json.dumps(delivery.payload, sort_keys=True).encode()
    timestamp = str(int(time.time()))
    if not delivery.endpoint.url.startswith(("http://", "https://")):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", last_error="not an http(s) URL")
        return None
    request = urllib.request.Request(  # noqa: S310 (http(s) only, checked above)
        delivery.endpoint.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "pinet-webhooks/1",
            "X-Pinet-Event": delivery.event,
            "X-Pinet-Delivery": delivery.payload.get("id", ""),
            "X-Pinet-Timestamp": timestamp,
            "X-Pinet-Signature": signature(delivery.endpoint.secret, timestamp, body),
        },
    )
    code, error = None, ""
    try:
        _check_destination(delivery.endpoint.url)
        with _OPENER.open(request, timeout=10) as response:
            code = response.status
    except urllib.error.HTTPError as exc:
        code, error = exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        error = str(getattr(exc, "reason", exc))[:500]
    except BlockedDestination as exc:
        error = str(exc)
    attempts = delivery.attempts + 1
    if code is not None and 200 <= code < 300:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status="succeeded", attempts=attempts, last_status_code=code, last_error="", delivered_at=timezone.now()
        )
        return None
    final = attempts >= MAX_ATTEMPTS
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="failed" if final else "pending", attempts=attempts, last_status_code=code, last_error=error
    )
    return None if final else min(3600, 10 * 2 ** (attempts - 1))
