"""The REST API: who sees what, the billing story, idempotency, keys and clear 4xx errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from images.models import OSImage
from nodes.apikeys import api_key_create
from nodes.models import ApiKey, Node
from provisioning.models import InstallJob
from tests.factories import make_node

pytestmark = pytest.mark.django_db


def _client(key: str | None = None, user=None) -> APIClient:
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def image():
    return OSImage.objects.create(
        name="raspios",
        arch="arm64",
        source="/x",
        state="ready",
        artefact_path="/x/a.zst",
        artefact_sha256="a" * 64,
        artefact_size=10,
    )


@pytest.fixture
def fleet(site, tenant, other_tenant):
    return {"a": make_node(site=site, n=1, tenant=tenant), "b": make_node(site=site, n=2, tenant=other_tenant)}


@pytest.fixture
def actors(operator, customer, other_customer, tenant, other_tenant):
    billing, _ = api_key_create(name="billing", scope="billing")
    key_a, _ = api_key_create(name="a", scope="tenant", tenant=tenant)
    key_b, _ = api_key_create(name="b", scope="tenant", tenant=other_tenant)
    op_key, _ = api_key_create(name="ops", scope="operator")
    return {
        "operator": _client(user=operator),
        "operator_key": _client(op_key),
        "billing": _client(billing),
        "tenant_key_a": _client(key_a),
        "tenant_key_b": _client(key_b),
        "customer_a": _client(user=customer),
        "customer_b": _client(user=other_customer),
        "anonymous": _client(),
    }


SEES_A = {"operator", "operator_key", "billing", "tenant_key_a", "customer_a"}


@pytest.mark.parametrize(
    "who",
    ["operator", "operator_key", "billing", "tenant_key_a", "tenant_key_b", "customer_a", "customer_b", "anonymous"],
)
def test_isolation_matrix(actors, fleet, image, who):
    client = actors[who]
    node_a = fleet["a"]
    detail = client.get(f"/api/v1/nodes/{node_a.pk}/")
    listing = client.get("/api/v1/nodes/")
    if who == "anonymous":
        assert detail.status_code in (401, 403) and listing.status_code in (401, 403)
        return
    # Another tenant's board is a 404, never a 403 that would confirm it exists.
    assert detail.status_code == (200 if who in SEES_A else 404)
    hostnames = {n["hostname"] for n in listing.json()["results"]}
    assert ("pi-1" in hostnames) == (who in SEES_A)
    action = client.post(f"/api/v1/nodes/{node_a.pk}/boot-mode/", {"boot_mode": "netboot"}, format="json")
    assert action.status_code == (202 if who in SEES_A else 404)
    jobs = client.get("/api/v1/install-jobs/")
    assert jobs.status_code == 200
    audit = client.get("/api/v1/audit-log/")
    assert audit.status_code == (200 if who in ("operator", "operator_key") else 403)
    assign = client.post(f"/api/v1/nodes/{node_a.pk}/assign/", {"tenant": "birch"}, format="json")
    assert assign.status_code == {"operator": 200, "operator_key": 200, "billing": 200}.get(
        who, 403 if who in SEES_A else 404
    )


def test_billing_story(actors, site, image):
    billing, ops = actors["billing"], actors["operator"]
    assert billing.post("/api/v1/tenants/", {"name": "Cedar Co", "slug": "cedar"}, format="json").status_code == 201
    user = billing.post(
        "/api/v1/tenants/cedar/users/", {"username": "dana", "password": "a-long-password-1"}, format="json"
    )
    assert user.status_code == 201
    node = ops.post(
        "/api/v1/nodes/",
        {"hostname": "rack-1", "site": "lab", "mac": "DC-A6-32-AB-CD-EF", "board_model": "pi4b", "ip": "192.0.2.60"},
        format="json",
    )
    assert node.status_code == 201, node.json()
    node_id = node.json()["id"]
    assert node.json()["mac"] == "dc:a6:32:ab:cd:ef"
    assert (
        billing.post(f"/api/v1/nodes/{node_id}/assign/", {"tenant": "cedar"}, format="json").json()["tenant"] == "cedar"
    )
    job = billing.post(f"/api/v1/nodes/{node_id}/reinstall/", {"image": image.pk}, format="json")
    assert job.status_code == 202 and job.json()["status"] == "pending"
    assert job.json()["events"][0]["stage"] == "requested"
    listed = billing.get(f"/api/v1/install-jobs/{job.json()['id']}/").json()
    assert listed["node"] == "rack-1"
    cancelled = billing.post(f"/api/v1/install-jobs/{job.json()['id']}/cancel/")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    released = billing.post(f"/api/v1/nodes/{node_id}/release/")
    assert released.json()["tenant"] is None
    suspended = billing.post(f"/api/v1/nodes/{node_id}/suspend/")
    assert suspended.json()["state"] == "suspended"
    refused = billing.post(f"/api/v1/nodes/{node_id}/reinstall/", {"image": image.pk}, format="json")
    assert refused.status_code == 400 and "suspended" in str(refused.json())


def test_idempotency_key(actors, fleet, image):
    client = actors["billing"]
    url = f"/api/v1/nodes/{fleet['a'].pk}/reinstall/"
    first = client.post(url, {"image": image.pk}, format="json", HTTP_IDEMPOTENCY_KEY="retry-1")
    again = client.post(url, {"image": image.pk}, format="json", HTTP_IDEMPOTENCY_KEY="retry-1")
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() and again["Idempotent-Replay"] == "true"
    assert InstallJob.objects.count() == 1
    other = client.post(url, {"image": image.pk + 1}, format="json", HTTP_IDEMPOTENCY_KEY="retry-1")
    assert other.status_code == 422


@pytest.mark.parametrize(
    ("payload", "field", "text"),
    [
        ({"mac": "not-a-mac"}, "mac", "is not a MAC address"),
        ({"mac": "dc:a6:32:00:00:01"}, "mac", "Another node already has this MAC address"),
        ({"ip": "198.51.100.9"}, "ip", "outside the site subnet"),
        ({"hostname": "Bad_Name"}, "hostname", "RFC 1123"),
    ],
)
def test_bad_input_is_a_400_with_the_field(actors, fleet, payload, field, text):
    body = {"hostname": "pi-new", "site": "lab", "mac": "dc:a6:32:11:22:33", "board_model": "pi4b", **payload}
    response = actors["operator"].post("/api/v1/nodes/", body, format="json")
    assert response.status_code == 400
    assert text in " ".join(response.json()[field])


def test_wrong_architecture_and_unknown_tenant(actors, fleet):
    amd64 = OSImage.objects.create(name="debian", arch="amd64", source="/x", state="ready", artefact_path="/x")
    response = actors["billing"].post(f"/api/v1/nodes/{fleet['a'].pk}/reinstall/", {"image": amd64.pk}, format="json")
    assert response.status_code == 400 and "is for amd64" in str(response.json())
    response = actors["billing"].post(f"/api/v1/nodes/{fleet['a'].pk}/assign/", {"tenant": "nope"}, format="json")
    assert response.status_code == 400 and "No tenant" in str(response.json())


def test_revoked_and_expired_keys(operator, fleet):
    key, row = api_key_create(name="old", scope="operator")
    assert _client(key).get("/api/v1/nodes/").status_code == 200
    ApiKey.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _client(key).get("/api/v1/nodes/")
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    key2, row2 = api_key_create(name="new", scope="operator")
    created = _client(user=operator).post(f"/api/v1/api-keys/{row2.pk}/revoke/")
    assert created.status_code == 200 and created.json()["revoked_at"]
    assert _client(key2).get("/api/v1/nodes/").status_code == 401
    assert _client("pinet_nope_nope").get("/api/v1/nodes/").status_code == 401
    assert not ApiKey.objects.filter(key_hash=key2).exists()


def test_api_keys_are_shown_once(actors, tenant):
    response = actors["operator"].post("/api/v1/api-keys/", {"name": "script", "scope": "tenant:acme"}, format="json")
    assert response.status_code == 201 and response.json()["key"].startswith("pinet_")
    listed = actors["operator"].get(f"/api/v1/api-keys/{response.json()['id']}/").json()
    assert "key" not in listed and listed["prefix"] in response.json()["key"]


def test_schema_and_docs_are_served_locally(actors):
    schema = actors["operator"].get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/nodes/{id}/reinstall/" in schema.content
    docs = actors["operator"].get("/api/docs/")
    assert docs.status_code == 200 and b"drf_spectacular_sidecar" in docs.content and b"cdn" not in docs.content.lower()


def test_filters(actors, fleet):
    response = actors["operator"].get("/api/v1/nodes/", {"tenant": "acme"})
    assert [n["hostname"] for n in response.json()["results"]] == ["pi-1"]
    response = actors["operator"].get("/api/v1/nodes/", {"q": "DC-A6-32-00-00-02"})
    assert [n["hostname"] for n in response.json()["results"]] == ["pi-2"]
    assert actors["operator"].get("/api/v1/nodes/", {"limit": 5000}).status_code == 200
    assert Node.objects.count() == 2


def test_apikey_command(tenant, capsys):
    from django.core.management import CommandError, call_command

    call_command("pinet_apikey", "create", "--name", "billing", "--scope", "billing", "--expires-days", "30")
    key = capsys.readouterr().out.strip()
    assert _client(key).get("/api/v1/tenants/").status_code == 200
    call_command("pinet_apikey", "create", "--name", "acme", "--scope", "tenant:acme")
    acme_key = capsys.readouterr().out.strip()
    assert [t["slug"] for t in _client(acme_key).get("/api/v1/tenants/").json()["results"]] == ["acme"]
    with pytest.raises(CommandError, match="No tenant 'nope'"):
        call_command("pinet_apikey", "create", "--name", "x", "--scope", "tenant:nope")
    prefix = key.split("_")[1]
    call_command("pinet_apikey", "revoke", prefix)
    assert _client(key).get("/api/v1/tenants/").status_code == 401


# Every list endpoint: which roles may read it at all (detail access follows visible_to).
LISTS = {
    "/api/v1/sites/": {
        "operator",
        "operator_key",
        "billing",
        "tenant_key_a",
        "tenant_key_b",
        "customer_a",
        "customer_b",
    },
    "/api/v1/tenants/": {
        "operator",
        "operator_key",
        "billing",
        "tenant_key_a",
        "tenant_key_b",
        "customer_a",
        "customer_b",
    },
    "/api/v1/nodes/": {
        "operator",
        "operator_key",
        "billing",
        "tenant_key_a",
        "tenant_key_b",
        "customer_a",
        "customer_b",
    },
    "/api/v1/images/": {
        "operator",
        "operator_key",
        "billing",
        "tenant_key_a",
        "tenant_key_b",
        "customer_a",
        "customer_b",
    },
    "/api/v1/install-jobs/": {
        "operator",
        "operator_key",
        "billing",
        "tenant_key_a",
        "tenant_key_b",
        "customer_a",
        "customer_b",
    },
    "/api/v1/config-revisions/": {"operator", "operator_key"},
    "/api/v1/audit-log/": {"operator", "operator_key"},
    "/api/v1/api-keys/": {"operator", "operator_key"},
    "/api/v1/webhooks/": {"operator", "operator_key", "billing"},
}


@pytest.mark.parametrize(
    "who",
    ["operator", "operator_key", "billing", "tenant_key_a", "tenant_key_b", "customer_a", "customer_b", "anonymous"],
)
def test_every_list_endpoint_by_role(actors, fleet, image, who):
    from provisioning.services import node_request_reinstall

    node_request_reinstall(node=fleet["a"], image=image, by=None)
    client = actors[who]
    for url, allowed in LISTS.items():
        response = client.get(url)
        if who == "anonymous":
            assert response.status_code in (401, 403), url
        else:
            assert response.status_code == (200 if who in allowed else 403), (url, response.status_code)
    # What a tenant sees of the others: nothing, anywhere.
    if who in ("tenant_key_b", "customer_b"):
        assert client.get("/api/v1/install-jobs/").json()["count"] == 0
        assert [t["slug"] for t in client.get("/api/v1/tenants/").json()["results"]] == ["birch"]
        job = InstallJob.objects.get()
        assert client.get(f"/api/v1/install-jobs/{job.pk}/").status_code == 404
        assert client.post(f"/api/v1/install-jobs/{job.pk}/cancel/").status_code == 404
        assert client.get("/api/v1/tenants/acme/").status_code == 404


def test_tenant_users_never_take_over_existing_accounts(actors, operator, other_customer):
    billing = actors["billing"]
    taken = billing.post("/api/v1/tenants/acme/users/", {"username": "charlie"}, format="json")
    assert taken.status_code == 409
    staff = billing.post("/api/v1/tenants/acme/users/", {"username": "alice", "existing": True}, format="json")
    assert staff.status_code == 409
    added = billing.post("/api/v1/tenants/acme/users/", {"username": "charlie", "existing": True}, format="json")
    assert added.status_code == 201 and "email" not in added.json()


def test_idempotency_is_per_caller(actors, fleet, image, tenant):
    from nodes.apikeys import api_key_revoke

    key, row = api_key_create(name="temp", scope="operator")
    first = _client(key).post(
        "/api/v1/tenants/", {"name": "Oak", "slug": "oak"}, format="json", HTTP_IDEMPOTENCY_KEY="same"
    )
    assert first.status_code == 201
    # Another caller with the same Idempotency-Key gets its own answer, not a replay.
    other = actors["operator"].post(
        "/api/v1/tenants/", {"name": "Oak", "slug": "oak"}, format="json", HTTP_IDEMPOTENCY_KEY="same"
    )
    assert other.status_code == 400 and "Idempotent-Replay" not in other
    api_key_revoke(key=row)
    assert (
        _client(key)
        .post("/api/v1/tenants/", {"name": "Oak", "slug": "oak"}, format="json", HTTP_IDEMPOTENCY_KEY="same")
        .status_code
        == 401
    )


def test_customers_do_not_see_image_sources(actors, image):
    assert "source" not in actors["customer_a"].get(f"/api/v1/images/{image.pk}/").json()
    assert actors["operator"].get(f"/api/v1/images/{image.pk}/").json()["source"] == "/x"


def test_operator_sets_a_site_boot_url_base(actors, site):
    answer = actors["operator"].patch(
        f"/api/v1/sites/{site.slug}/", {"boot_url_base": "http://203.0.113.1:8080/"}, format="json"
    )
    assert answer.status_code == 200 and answer.json()["boot_url_base"] == "http://203.0.113.1:8080"
    answer = actors["operator"].patch(f"/api/v1/sites/{site.slug}/", {"boot_url_base": "nope"}, format="json")
    assert answer.status_code == 400 and "boot_url_base" in answer.json()
