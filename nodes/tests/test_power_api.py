"""The power endpoints: customers cycle their own boards, operators own the settings, secrets
never come back, refusals say why (409 manual, 429 too soon)."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from nodes.models import PowerAction
from nodes.power.services import node_power_set
from tests.factories import make_node

pytestmark = pytest.mark.django_db

SECRET = "the-switch-community-4d1c"


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def board(site, tenant):
    node = make_node(site=site, n=1, tenant=tenant)
    return node_power_set(
        node=node,
        driver="snmp-poe",
        params={"host": "192.0.2.2", "pse_port": 3},
        secrets={"community": SECRET},
        by=None,
    )


def test_customer_power_cycles_their_board(board, customer):
    response = _client(customer).post(f"/api/v1/nodes/{board.pk}/power-cycle/")
    assert response.status_code == 202
    body = response.json()
    assert (body["action"], body["status"], body["hostname"]) == ("cycle", "queued", "pi-1")
    assert PowerAction.objects.get(pk=body["id"]).requested_by_label == "bob"


def test_customer_cannot_power_other_tenants_boards(board, other_customer):
    client = _client(other_customer)
    assert client.post(f"/api/v1/nodes/{board.pk}/power-cycle/").status_code == 404
    assert client.post(f"/api/v1/nodes/{board.pk}/power/", {"action": "off"}, format="json").status_code == 404
    assert client.get(f"/api/v1/nodes/{board.pk}/power-settings/").status_code == 404


def test_too_soon_is_a_429_with_retry_after(board, customer):
    client = _client(customer)
    assert client.post(f"/api/v1/nodes/{board.pk}/power/", {"action": "off"}, format="json").status_code == 202
    response = client.post(f"/api/v1/nodes/{board.pk}/power-cycle/")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 30 and "PINET_POWER_MIN_INTERVAL" in response.json()["detail"]


def test_manual_driver_is_a_409_saying_what_to_do(site, tenant, customer):
    node = make_node(site=site, n=2, tenant=tenant)
    response = _client(customer).post(f"/api/v1/nodes/{node.pk}/power-cycle/")
    assert response.status_code == 409
    body = response.json()
    assert body["detail"].startswith("pi-2 has no remote power control: power-cycle it")
    assert body["power_action"]["status"] == "manual"


def test_bad_action_is_a_400(board, operator):
    response = _client(operator).post(f"/api/v1/nodes/{board.pk}/power/", {"action": "explode"}, format="json")
    assert response.status_code == 400 and "action" in response.json()


def test_power_settings_are_for_operators_and_secrets_write_only(board, operator, customer):
    assert _client(customer).get(f"/api/v1/nodes/{board.pk}/power-settings/").status_code == 403
    put = {"driver": "snmp-poe", "params": {"host": "192.0.2.2", "pse_port": 4}, "secrets": {"community": "x"}}
    assert _client(customer).put(f"/api/v1/nodes/{board.pk}/power-settings/", put, format="json").status_code == 403
    client = _client(operator)
    response = client.get(f"/api/v1/nodes/{board.pk}/power-settings/")
    assert response.status_code == 200 and SECRET not in response.content.decode()
    assert response.json() == {
        "driver": "snmp-poe",
        "params": {"host": "192.0.2.2", "pse_port": 3, "version": "2c", "vendor": "standard"},
        "secrets_state": {"community": "set", "auth_key": "not set", "priv_key": "not set"},
    }
    new_secret = "a-new-community-77"
    put["secrets"] = {"community": new_secret}
    response = client.put(f"/api/v1/nodes/{board.pk}/power-settings/", put, format="json")
    assert response.status_code == 200 and new_secret not in response.content.decode()
    assert response.json()["params"]["pse_port"] == 4
    node = client.get(f"/api/v1/nodes/{board.pk}/").json()
    assert node["power_driver"] == "snmp-poe" and new_secret not in json.dumps(node) and SECRET not in json.dumps(node)


def test_power_settings_mistakes_are_named(board, operator):
    response = _client(operator).put(
        f"/api/v1/nodes/{board.pk}/power-settings/",
        {"driver": "webhook", "params": {"on": "gopher://plug/"}, "secrets": {"token": "t"}},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()) >= {"on", "cycle"}


def test_node_update_cannot_change_the_driver_behind_the_settings(board, operator):
    response = _client(operator).patch(f"/api/v1/nodes/{board.pk}/", {"power_driver": "manual"}, format="json")
    assert response.status_code == 200 and response.json()["power_driver"] == "snmp-poe"


def test_power_actions_are_listed_per_tenant(board, site, other_tenant, operator, customer, other_customer):
    other = make_node(site=site, n=2, tenant=other_tenant)
    _client(customer).post(f"/api/v1/nodes/{board.pk}/power-cycle/")
    _client(other_customer).post(f"/api/v1/nodes/{other.pk}/power-cycle/")
    mine = _client(customer).get("/api/v1/power-actions/").json()["results"]
    assert [row["hostname"] for row in mine] == ["pi-1"]
    assert len(_client(operator).get("/api/v1/power-actions/").json()["results"]) == 2
    filtered = _client(operator).get("/api/v1/power-actions/", {"node": other.pk}).json()["results"]
    assert [row["hostname"] for row in filtered] == ["pi-2"]
    theirs = PowerAction.objects.get(node=other)
    assert _client(customer).get(f"/api/v1/power-actions/{theirs.pk}/").status_code == 404
