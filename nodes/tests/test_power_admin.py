"""Power settings in the Node admin: validated on the form, secrets write-only and encrypted."""

import json

import pytest
from django.urls import reverse

from nodes.models import AuditLog, Node, PowerAction
from nodes.power.crypto import power_secrets_decrypt
from tests.factories import make_node

pytestmark = pytest.mark.django_db

SECRET = "admin-typed-community-5e"


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password="pw-root")


def _form(node: Node, **power) -> dict:
    return {
        "hostname": node.hostname,
        "site": node.site_id,
        "tenant": "",
        "board_model": node.board_model,
        "mac": node.mac,
        "serial": "",
        "client_id": "",
        "relay_remote_id": "",
        "relay_circuit_id": "",
        "ip": node.ip,
        "boot_mode": node.boot_mode,
        "image": "",
        "power_driver": "manual",
        "power_params": "{}",
        "power_secrets_input": "",
        **power,
    }


def test_power_settings_in_the_admin(client, superuser, site):
    node = make_node(site=site, n=1)
    client.force_login(superuser)
    url = reverse("admin:nodes_node_change", args=[node.pk])
    bad = _form(node, power_driver="snmp-poe", power_params=json.dumps({"host": "192.0.2.2"}))
    response = client.post(url, bad)
    assert response.status_code == 200
    assert "pse_port: Required" in response.content.decode() and "community: Required" in response.content.decode()
    good = _form(
        node,
        power_driver="snmp-poe",
        power_params=json.dumps({"host": "192.0.2.2", "pse_port": 2}),
        power_secrets_input=json.dumps({"community": SECRET}),
    )
    assert client.post(url, good).status_code == 302
    node.refresh_from_db()
    assert node.power_driver == "snmp-poe" and SECRET not in node.power_secrets
    assert power_secrets_decrypt(node_id=node.pk, token=node.power_secrets) == {"community": SECRET}
    assert AuditLog.objects.filter(action="node.power_settings", actor=superuser).exists()
    page = client.get(url).content.decode()
    assert SECRET not in page and "community: set" in page
    # Saving again without typing the secret keeps it.
    assert client.post(url, {**good, "power_secrets_input": ""}).status_code == 302
    node.refresh_from_db()
    assert power_secrets_decrypt(node_id=node.pk, token=node.power_secrets) == {"community": SECRET}


def test_power_actions_are_read_only_in_the_admin(client, superuser, site):
    node = make_node(site=site, n=1)
    action = PowerAction.objects.create(node=node, action="cycle", driver="webhook", requested_by_label="x")
    client.force_login(superuser)
    assert client.get(reverse("admin:nodes_poweraction_changelist")).status_code == 200
    assert client.get(reverse("admin:nodes_poweraction_add")).status_code == 403
    client.post(reverse("admin:nodes_poweraction_delete", args=[action.pk]), {"post": "yes"})
    assert PowerAction.objects.filter(pk=action.pk).exists()
