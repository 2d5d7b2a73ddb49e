"""Actor fixtures shared by every app's tests (STYLE.md R15)."""

import pytest

from nodes.models import TenantMembership
from tests.factories import make_site, make_tenant


@pytest.fixture
def site(db):
    return make_site()


@pytest.fixture
def tenant(db):
    return make_tenant("acme")


@pytest.fixture
def other_tenant(db):
    return make_tenant("birch")


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice", is_staff=True)


@pytest.fixture
def customer(django_user_model, tenant):
    user = django_user_model.objects.create_user("bob", password="pw-bob")
    TenantMembership.objects.create(tenant=tenant, user=user)
    return user


@pytest.fixture
def other_customer(django_user_model, other_tenant):
    user = django_user_model.objects.create_user("charlie", password="pw-charlie")
    TenantMembership.objects.create(tenant=other_tenant, user=user)
    return user
