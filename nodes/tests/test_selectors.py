import pytest
from django.contrib.auth.models import AnonymousUser

from nodes import selectors
from nodes.models import Node, Site, Tenant
from tests.factories import make_node

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(site, tenant, other_tenant):
    return {
        "mine": make_node(site=site, n=1, tenant=tenant),
        "theirs": make_node(site=site, n=2, tenant=other_tenant),
        "unrented": make_node(site=site, n=3),
    }


def test_operator_sees_every_node(fleet, operator):
    assert set(Node.objects.visible_to(operator)) == set(fleet.values())


def test_customer_sees_only_own_tenant_nodes(fleet, customer):
    assert list(Node.objects.visible_to(customer)) == [fleet["mine"]]


def test_customer_cannot_see_other_nodes(fleet, other_customer):
    assert list(selectors.node_list(user=other_customer)) == [fleet["theirs"]]
    with pytest.raises(Node.DoesNotExist):
        selectors.node_get(user=other_customer, pk=fleet["mine"].pk)


def test_anonymous_and_inactive_users_see_nothing(fleet, customer):
    assert not Node.objects.visible_to(AnonymousUser()).exists()
    assert not Node.objects.visible_to(None).exists()
    customer.is_active = False
    assert not Node.objects.visible_to(customer).exists()


def test_customer_in_no_tenant_sees_nothing(fleet, django_user_model):
    loner = django_user_model.objects.create_user("dave", password="x")
    assert not Node.objects.visible_to(loner).exists()
    assert not Tenant.objects.visible_to(loner).exists()


def test_tenant_and_site_scoping(fleet, customer, tenant, site, operator):
    assert list(Tenant.objects.visible_to(customer)) == [tenant]
    assert list(Site.objects.visible_to(customer)) == [site]
    assert Tenant.objects.visible_to(operator).count() == 2


def test_state_counts_follow_scope(fleet, customer):
    counts = selectors.node_state_counts(user=customer)
    assert counts["ready"] == 1 and sum(counts.values()) == 1


def test_audit_log_is_for_operators_only(customer, operator):
    assert not selectors.audit_log_list(user=customer).exists()
    assert selectors.audit_log_list(user=operator).model.__name__ == "AuditLog"
