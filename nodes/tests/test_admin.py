"""Every model is usable in the admin by an operator; customers are kept out."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from nodes.discovery_services import discovery_record
from nodes.models import AuditLog, DiscoveredBoard, Node
from provisioning.services import boot_token_issue, install_job_create
from tests.factories import make_image, make_node

from .test_discovery_services import pi4

pytestmark = pytest.mark.django_db

PINET_MODELS = [m for app in ("nodes", "images", "provisioning") for m in apps.get_app_config(app).get_models()]


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password="pw-root")


@pytest.fixture
def populated(site, tenant):
    node = make_node(site=site, n=1, tenant=tenant)
    image = make_image(state="ready")
    job = install_job_create(node=node, image=image, by=None)
    boot_token_issue(job=job)
    discovery_record(site=site, sighting=pi4(mac="dc:a6:32:77:00:01", circuit_id="0004000a0107"))
    return node


def test_every_model_is_registered():
    unregistered = [
        m.__name__ for m in PINET_MODELS if m not in admin.site._registry and m.__name__ != "TenantMembership"
    ]
    assert unregistered == []


@pytest.mark.parametrize("model", [m for m in PINET_MODELS if m in admin.site._registry], ids=lambda m: m.__name__)
def test_changelist_and_change_pages_render(client, superuser, populated, model):
    client.force_login(superuser)
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    assert client.get(url).status_code == 200
    assert client.get(url, {"q": "dc:a6:32"}).status_code == 200
    obj = model.objects.first()
    if obj is not None:
        assert client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])).status_code == 200


def test_node_search_accepts_any_mac_spelling(client, superuser, populated):
    client.force_login(superuser)
    response = client.get(reverse("admin:nodes_node_changelist"), {"q": "DC-A6-32-00-00-01"})
    assert populated.hostname in response.content.decode()


def test_node_added_in_admin_is_validated_and_audited(client, superuser, site):
    client.force_login(superuser)
    form = {
        "hostname": "pi-admin",
        "site": site.pk,
        "board_model": "pi4b",
        "mac": "DC:A6:32:11:22:33",
        "ip": "192.0.2.150",
        "boot_mode": "local",
        "power_driver": "manual",
        "power_params": "{}",
        "serial": "",
        "client_id": "",
        "relay_remote_id": "",
        "relay_circuit_id": "",
    }
    response = client.post(reverse("admin:nodes_node_add"), form)
    assert response.status_code == 200 and "inside the dynamic range" in response.content.decode()
    form["ip"] = "192.0.2.50"
    response = client.post(reverse("admin:nodes_node_add"), form)
    assert response.status_code == 302
    node = Node.objects.get(hostname="pi-admin")
    assert node.mac == "dc:a6:32:11:22:33"
    assert AuditLog.objects.filter(action="node.create", actor=superuser, object_id=str(node.pk)).exists()


def test_audit_log_is_read_only(client, superuser, populated):
    client.force_login(superuser)
    entry = AuditLog.objects.create(actor_label="x", action="a", object_type="t", object_id="1", object_repr="r")
    assert client.get(reverse("admin:nodes_auditlog_add")).status_code == 403
    client.post(reverse("admin:nodes_auditlog_delete", args=[entry.pk]), {"post": "yes"})
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def test_customer_cannot_use_admin(client, customer):
    client.force_login(customer)
    response = client.get(reverse("admin:nodes_node_changelist"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_discovered_boards_are_ignored_and_unignored_in_admin(client, superuser, populated):
    client.force_login(superuser)
    board = DiscoveredBoard.objects.get()
    url = reverse("admin:nodes_discoveredboard_changelist")
    page = client.get(reverse("admin:nodes_discoveredboard_change", args=[board.pk])).content.decode()
    assert "vlan 10 module 1 port 7" in page
    assert client.get(reverse("admin:nodes_discoveredboard_add")).status_code == 403
    client.post(url, {"action": "ignore", "_selected_action": [board.pk]})
    assert DiscoveredBoard.objects.get().status == "ignored"
    client.post(url, {"action": "unignore", "_selected_action": [board.pk]})
    assert DiscoveredBoard.objects.get().status == "new"
    assert list(AuditLog.objects.filter(actor=superuser).values_list("action", flat=True).order_by("pk")) == [
        "discovered_board.ignore",
        "discovered_board.unignore",
    ]
