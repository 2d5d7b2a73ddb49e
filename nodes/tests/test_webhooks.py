import hashlib
import hmac
import http.server
import json
import threading

import pytest
from rest_framework.test import APIClient

from nodes.apikeys import api_key_create
from nodes.models import WebhookDelivery
from nodes.webhooks import MAX_ATTEMPTS, webhook_deliver
from tests.factories import make_node

pytestmark = pytest.mark.django_db

SECRET = "a-shared-secret-of-the-billing-system"


class Receiver:
    def __init__(self, status: int = 200):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/pinet"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture(autouse=True)
def allow_loopback_receiver(settings):
    settings.PINET_WEBHOOK_ALLOW_PRIVATE = True  # the test receiver listens on 127.0.0.1


@pytest.fixture
def billing():
    key, _ = api_key_create(name="billing", scope="billing")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_signed_delivery_after_commit(billing, site, tenant, django_capture_on_commit_callbacks):
    receiver = Receiver()
    try:
        endpoint = billing.post(
            "/api/v1/webhooks/",
            {"url": receiver.url, "secret": SECRET, "events": ["node.assigned", "node.released"]},
            format="json",
        )
        assert endpoint.status_code == 201 and "secret" not in endpoint.json()
        node = make_node(site=site, n=1)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = billing.post(f"/api/v1/nodes/{node.pk}/assign/", {"tenant": "acme"}, format="json")
        assert response.status_code == 200
        # The request only recorded the delivery; sending happens after commit, in a worker.
        assert receiver.received == [] and len(callbacks) >= 1
        delivery = WebhookDelivery.objects.get(event="node.assigned")
        assert webhook_deliver(delivery_id=delivery.pk) is None
        headers, body = receiver.received[0]
        expected = (
            "sha256="
            + hmac.new(SECRET.encode(), headers["X-Pinet-Timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
        )
        assert hmac.compare_digest(headers["X-Pinet-Signature"], expected)
        payload = json.loads(body)
        assert payload["event"] == "node.assigned" and payload["data"]["node"]["tenant"] == "acme"
        log = billing.get(f"/api/v1/webhooks/{endpoint.json()['id']}/deliveries/").json()["results"]
        assert log[0]["status"] == "succeeded" and log[0]["last_status_code"] == 200
    finally:
        receiver.close()


def test_failures_back_off_and_give_up(billing, site):
    receiver = Receiver(status=500)
    try:
        billing.post(
            "/api/v1/webhooks/", {"url": receiver.url, "secret": SECRET, "events": ["node.suspended"]}, format="json"
        )
        node = make_node(site=site, n=1)
        billing.post(f"/api/v1/nodes/{node.pk}/suspend/")
        delivery = WebhookDelivery.objects.get(event="node.suspended")
        waits = [webhook_deliver(delivery_id=delivery.pk) for _ in range(MAX_ATTEMPTS)]
        assert waits[:3] == [10, 20, 40] and waits[-1] is None
        delivery.refresh_from_db()
        assert delivery.status == "failed" and delivery.attempts == MAX_ATTEMPTS and delivery.last_status_code == 500
    finally:
        receiver.close()


def test_unknown_events_and_urls_are_refused(billing):
    response = billing.post(
        "/api/v1/webhooks/", {"url": "ftp://x/", "secret": SECRET, "events": ["node.eaten"]}, format="json"
    )
    assert response.status_code == 400 and set(response.json()) == {"url", "events"}


def test_internal_destinations_are_refused_by_default(billing, site, settings):
    settings.PINET_WEBHOOK_ALLOW_PRIVATE = False
    receiver = Receiver()
    try:
        billing.post(
            "/api/v1/webhooks/", {"url": receiver.url, "secret": SECRET, "events": ["node.suspended"]}, format="json"
        )
        node = make_node(site=site, n=1)
        billing.post(f"/api/v1/nodes/{node.pk}/suspend/")
        delivery = WebhookDelivery.objects.get(event="node.suspended")
        webhook_deliver(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert receiver.received == [] and "not a public address" in delivery.last_error
    finally:
        receiver.close()
