import pytest
from django.urls import reverse

from tests.factories import make_node

pytestmark = pytest.mark.django_db


def test_dashboard_needs_login(client):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_login_page_and_login(client, customer):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": "bob", "password": "pw-bob"})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")


def test_wrong_password_says_so(client, customer):
    response = client.post(reverse("login"), {"username": "bob", "password": "nope"})
    assert b"did not match" in response.content


def test_customer_dashboard_lists_only_own_boards(client, site, tenant, other_tenant, customer):
    make_node(site=site, n=1, tenant=tenant, hostname="mine")
    make_node(site=site, n=2, tenant=other_tenant, hostname="theirs")
    client.force_login(customer)
    body = client.get(reverse("dashboard")).content.decode()
    assert "mine" in body and "theirs" not in body and "My boards" in body


def test_operator_dashboard_lists_all_boards(client, site, tenant, operator):
    make_node(site=site, n=1, tenant=tenant, hostname="mine")
    make_node(site=site, n=2, hostname="spare")
    client.force_login(operator)
    body = client.get(reverse("dashboard")).content.decode()
    assert "mine" in body and "spare" in body and "Fleet" in body


def test_dashboard_queries_do_not_grow_with_the_fleet(client, site, tenant, operator, django_assert_max_num_queries):
    for n in range(1, 40):
        make_node(site=site, n=n, tenant=tenant)
    client.force_login(operator)
    # Fixed whatever the fleet size: session, user, counts, page, overview (jobs, failures,
    # per-site state counts, discovered counts, sites).
    with django_assert_max_num_queries(13):
        assert client.get(reverse("dashboard")).status_code == 200


def test_bad_page_number_is_not_an_error(client, operator):
    client.force_login(operator)
    assert client.get(reverse("dashboard") + "?page=zzz").status_code == 200


def test_healthz(client):
    assert client.get(reverse("healthz")).json() == {"status": "ok"}


def test_dashboard_filters_like_the_api(client, site, tenant, operator):
    make_node(site=site, n=1, tenant=tenant, hostname="rented")
    make_node(site=site, n=2, hostname="spare")
    client.force_login(operator)
    body = client.get(reverse("dashboard"), {"tenant": "acme"}).content.decode()
    assert "rented" in body and "spare" not in body


def test_operator_overview_shows_running_installs_and_rejected_configs(client, site, operator):
    from images.models import OSImage
    from provisioning.models import ConfigRevision
    from provisioning.services import node_request_reinstall

    node = make_node(site=site, n=1, state="deployed")
    image = OSImage.objects.create(name="raspios", arch="arm64", source="/x", state="ready", artefact_path="/x")
    node_request_reinstall(node=node, image=image, by=None)
    ConfigRevision.objects.create(
        site=site,
        backend="dnsmasq",
        sha256="",
        content="",
        status="rejected",
        validator_output="bad dhcp-range at line 9",
    )
    client.force_login(operator)
    body = client.get(reverse("dashboard")).content.decode()
    assert "Installs running" in body and "pi-1" in body and "bad dhcp-range at line 9" in body


def test_customers_get_no_operator_overview(client, site, tenant, customer):
    make_node(site=site, n=1, tenant=tenant)
    client.force_login(customer)
    assert "Installs running" not in client.get(reverse("dashboard")).content.decode()
