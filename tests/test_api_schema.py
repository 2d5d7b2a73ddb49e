"""Schemathesis against pinet's own OpenAPI schema, in process: no server errors, and every
response conforms to the schema (status codes, content types, bodies)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pinet.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture(autouse=True)
def keep_test_connection():
    # Called as a WSGI app, Django closes the database connection after each request; the
    # test database lives in that connection (as Django's own test client arranges too).
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def operator_key(db, site, tenant):
    from images.models import OSImage
    from nodes.apikeys import api_key_create
    from tests.factories import make_node

    make_node(site=site, n=1, tenant=tenant)
    OSImage.objects.create(name="raspios", arch="arm64", source="/x", state="ready", artefact_path="/x/a.zst")
    key, _ = api_key_create(name="schemathesis", scope="operator")
    return key


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, operator_key):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {operator_key}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
