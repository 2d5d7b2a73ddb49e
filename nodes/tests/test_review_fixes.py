"""Regressions from a review of the dashboard, discovery and power work: tenant isolation of
jobs after a board changes hands, odd form input, infrastructure details kept from customers."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from nodes.choices import NodeState
from nodes.models import PowerAction
from nodes.power.services import node_power_set
from nodes.services import node_update
from provisioning.models import ConfigRevision, InstallJob
from provisioning.services import node_request_reinstall
from tests.factories import make_node, make_ready_image

pytestmark = pytest.mark.django_db


@pytest.fixture
def image(tmp_path):
    return make_ready_image(tmp_path, b"x" * 100)


def test_former_tenant_loses_the_job_when_the_board_changes_hands(client, site, tenant, other_tenant, customer, image):
    node = make_node(site=site, n=1, tenant=tenant, state=NodeState.DEPLOYED)
    job = node_request_reinstall(node=node, image=image, by=customer)
    client.force_login(customer)
    assert ">pi-1<" in client.get(reverse("job-list")).content.decode()
    node_update(node=node, by=None, tenant=other_tenant)
    assert ">pi-1<" not in client.get(reverse("job-list")).content.decode()
    assert client.post(reverse("job-cancel", args=[job.pk])).status_code == 404
    api = APIClient()
    api.force_authenticate(customer)
    assert api.post(f"/api/v1/install-jobs/{job.pk}/cancel/").status_code == 404
    assert InstallJob.objects.get(pk=job.pk).status == "pending"


def test_odd_ids_in_forms_are_refusals_not_errors(client, site, operator):
    client.force_login(operator)
    for value in ("²", "9" * 30, "-1"):
        response = client.post(reverse("node-bulk"), {"action": "release", "node": [value]}, follow=True)
        assert response.status_code == 200 and "Select at least one board." in response.content.decode()


def test_nul_in_the_path_is_a_400(client, operator):
    client.force_login(operator)
    assert client.get("/api/v1/sites/%00/").status_code == 400


def test_power_settings_refuse_odd_numbers_and_urls(site):
    node = make_node(site=site, n=1)
    for params in ({"host": "192.0.2.2", "pse_port": "³"},):
        with pytest.raises(ValidationError):
            node_power_set(node=node, driver="snmp-poe", params=params, secrets={"community": "c"}, by=None)
    for url in ("http://[::1/x", "http://192.0.2.9:99999/on", "http://192.0.2.9/cm relay?x=1"):
        with pytest.raises(ValidationError):
            node_power_set(node=node, driver="webhook", params={"cycle": url}, secrets={}, by=None)


def test_customers_do_not_see_what_the_switch_answered(site, tenant, customer, operator):
    node = make_node(site=site, n=1, tenant=tenant)
    action = PowerAction.objects.create(
        node=node,
        tenant=tenant,
        action="cycle",
        status="failed",
        driver="snmp-poe",
        requested_by_label="bob",
        error="No answer from 192.0.2.2:161 (community rw-secret)",
    )
    api = APIClient()
    api.force_authenticate(customer)
    row = api.get(f"/api/v1/power-actions/{action.pk}/").json()
    assert "192.0.2.2" not in str(row) and row["error"] == "The power action failed; an operator can see why."
    api.force_authenticate(operator)
    assert "192.0.2.2" in api.get(f"/api/v1/power-actions/{action.pk}/").json()["error"]


def test_revision_page_masks_boot_tokens(client, site, operator):
    token = "A" * 43
    revision = ConfigRevision.objects.create(
        site=site,
        backend="dnsmasq",
        sha256="ab" * 32,
        content=f'dhcp-option=tag:n1,224,"http://192.0.2.1/boot/{token}/?v=1"\n',
        status="applied",
        diff=f"+pinet.url=http://192.0.2.1/boot/{token}/?v=1\n",
    )
    client.force_login(operator)
    body = client.get(reverse("revision-detail", args=[revision.pk])).content.decode()
    assert token not in body and "/boot/&lt;token&gt;/" in body


def test_adopt_form_with_an_odd_image_id_says_so(client, site, operator):
    from nodes.tests.test_operator_pages import _discovered

    board = _discovered(site)
    client.force_login(operator)
    response = client.post(
        reverse("discovered-adopt", args=[board.pk]), {"hostname": "x1", "boot_mode": "local", "image": "²"}
    )
    assert response.status_code == 200 and "Pick one of the ready images offered." in response.content.decode()
