"""Power credentials, encrypted at rest with Fernet (AES-128-CBC and HMAC-SHA256).

Keys come from PINET_POWER_KEY (comma-separated: the first encrypts, every one decrypts, so
keys rotate without a flag day; `manage.py pinet_power_rekey` re-encrypts with the first).
In embedded mode a key derived from SECRET_KEY (HKDF-SHA256) is always tried last, so the
quickstart needs no setting and an embedded install can move to its own key later.
Production never derives one: rotating SECRET_KEY must not make credentials unreadable.
"""

from __future__ import annotations

import base64
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from .base import PowerError


class PowerKeyMissing(Exception):  # noqa: N818 (a deployment state, named for what is missing)
    """No key to encrypt with: production without PINET_POWER_KEY."""

    def __init__(self) -> None:
        super().__init__(
            "Power credentials are encrypted with PINET_POWER_KEY, which is not set: generate one with "
            '`python3 -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())"`, '
            "set PINET_POWER_KEY (or PINET_POWER_KEY_FILE) for the web server and the workers, and restart them."
        )


def derived_key() -> bytes:
    """The embedded-mode key: HKDF-SHA256 of SECRET_KEY with a purpose label, so it is
    useless for anything else SECRET_KEY signs."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"pinet", info=b"pinet power credentials v1")
    return base64.urlsafe_b64encode(hkdf.derive(settings.SECRET_KEY.encode()))


def _fernet() -> MultiFernet | None:
    keys = [key.encode() for key in settings.PINET_POWER_KEYS]
    if settings.EMBEDDED:
        keys.append(derived_key())
    return MultiFernet([Fernet(key) for key in keys]) if keys else None


def power_secrets_encrypt(*, node_id: int, secrets: dict) -> str:
    """The ciphertext to store for a node's secrets ("" for none). The node's id is sealed in
    with them, so a ciphertext copied onto another node's row is refused when read."""
    if not secrets:
        return ""
    fernet = _fernet()
    if fernet is None:
        raise PowerKeyMissing
    return fernet.encrypt(json.dumps({"node": node_id, "secrets": secrets}, sort_keys=True).encode()).decode()


def power_secrets_decrypt(*, node_id: int, token: str) -> dict:
    """A node's secrets, or PowerError saying why they cannot be read."""
    if not token:
        return {}
    fernet = _fernet()
    if fernet is None:
        raise PowerError(str(PowerKeyMissing()))
    try:
        payload = json.loads(fernet.decrypt(token.encode()))
    except InvalidToken:
        raise PowerError(
            "The stored power credentials cannot be decrypted with PINET_POWER_KEY: the key was changed or "
            "removed. Put the old key back after the new one (PINET_POWER_KEY=new,old) or enter the credentials "
            "again in the power settings."
        ) from None
    if payload.get("node") != node_id:
        raise PowerError("The stored power credentials belong to another node; enter them again.")
    return payload["secrets"]


def power_secrets_rotate(*, token: str) -> str:
    """Re-encrypt with the first key (after a new one was put in front)."""
    fernet = _fernet()
    if not token or fernet is None:
        return token
    try:
        return fernet.rotate(token.encode()).decode()
    except InvalidToken:
        raise PowerError("Cannot decrypt these credentials with any key in PINET_POWER_KEY.") from None
