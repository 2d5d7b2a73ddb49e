"""API keys: creation (the key is shown once), verification, and the principal a request
authenticated by one acts as."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import ApiKey, ApiKeyScope, Tenant

PREFIX = "pinet_"


@dataclass
class ApiPrincipal:
    """Who a key acts as. visible_to() treats operator and billing keys like staff and limits
    a tenant key to its tenant's objects."""

    key: ApiKey
    scope: str
    tenant_ids: list[int] = field(default_factory=list)
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False
    pk: None = None

    @property
    def is_staff(self) -> bool:
        return self.scope in (ApiKeyScope.OPERATOR, ApiKeyScope.BILLING)

    @property
    def pinet_tenant_ids(self) -> list[int] | None:
        return self.tenant_ids if self.scope == ApiKeyScope.TENANT else None

    def get_username(self) -> str:
        return f"api-key:{self.key.prefix}"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def api_key_create(
    *, name: str, scope: str, tenant: Tenant | None = None, expires_at: datetime | None = None, by=None
) -> tuple[str, ApiKey]:
    """Mint a key; returns (the key, shown once, and its row)."""
    from .services import audit_log_write, user_or_none

    if scope not in ApiKeyScope.values:
        raise ValidationError({"scope": f"{scope!r} is not a scope: use operator, billing or tenant:<slug>."})
    if (scope == ApiKeyScope.TENANT) != (tenant is not None):
        raise ValidationError({"tenant": "A tenant key names its tenant; other keys name none."})
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = f"{PREFIX}{prefix}_{secret}"
    row = ApiKey.objects.create(
        name=name,
        prefix=prefix,
        key_hash=_hash(key),
        scope=scope,
        tenant=tenant,
        expires_at=expires_at,
        created_by=user_or_none(by),
    )
    audit_log_write(actor=by, action="api_key.create", obj=row, data={"scope": scope, "prefix": prefix})
    return key, row


def api_key_revoke(*, key: ApiKey, by=None) -> ApiKey:
    from .services import audit_log_write

    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    audit_log_write(actor=by, action="api_key.revoke", obj=key)
    key.refresh_from_db()
    return key


def api_key_check(raw: str) -> ApiPrincipal:
    """The principal for a presented key; raises AuthenticationFailed with a reason."""
    if not raw.startswith(PREFIX) or raw.count("_") < 2:
        raise exceptions.AuthenticationFailed("That is not a pinet API key.")
    prefix = raw[len(PREFIX) :].split("_", 1)[0]
    row = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
    if row is None or not hmac.compare_digest(row.key_hash, _hash(raw)):
        raise exceptions.AuthenticationFailed("Unknown API key.")
    now = timezone.now()
    if row.revoked_at is not None:
        raise exceptions.AuthenticationFailed("This API key was revoked.")
    if row.expires_at is not None and row.expires_at <= now:
        raise exceptions.AuthenticationFailed("This API key has expired.")
    ApiKey.objects.filter(pk=row.pk).update(last_used_at=now)
    return ApiPrincipal(key=row, scope=row.scope, tenant_ids=[row.tenant_id] if row.tenant_id else [])


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authorization: Bearer pinet_<prefix>_<secret>"""

    keyword = "Bearer"

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header.startswith(f"{self.keyword} "):
            return None
        principal = api_key_check(header[len(self.keyword) + 1 :].strip())
        return principal, principal.key

    def authenticate_header(self, request):
        return self.keyword
