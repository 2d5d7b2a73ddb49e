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


@pytest.fixture(autouse=True)
def _empty_process_cache():
    """The per-process cache (boot-token rate counters, plans) must not carry one test's
    rows into the next, which may reuse their ids."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(scope="session", autouse=True)
def _end_stray_database_sessions(django_db_setup, django_db_blocker):
    """Child processes (workers, gunicorn) and live-server threads can leave a PostgreSQL
    session open on the test database, and then it cannot be dropped at the end. End them
    (only sessions on this worker's own test database) before the teardown runs."""
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
