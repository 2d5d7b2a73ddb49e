"""The power driver interface: on, off, cycle and status, each with a typed result.

A driver talks to one device (a PoE switch port, a smart plug, a relay board) for one board.
It never touches the database: the service hands it the node's parameters and decrypted
secrets, runs it inside a Celery task and records what it returned or raised.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError

from nodes.choices import PowerState


@dataclass(frozen=True)
class PowerResult:
    """What a driver did or saw: the board's power state afterwards and the device's own words."""

    state: str  # a PowerState value
    detail: str = ""


class PowerError(Exception):
    """The device did not do what was asked. The message says what happened and what to fix;
    it is shown to operators and written into the job's timeline."""


class ManualPowerRequired(Exception):  # noqa: N818 (an outcome, not a fault)
    """The board has no remote power control: a person has to do it. The message says what."""


@dataclass(frozen=True)
class Target:
    """The board a driver acts on, for messages and request templates."""

    node_id: int = 0
    hostname: str = ""
    mac: str = ""


class Params:
    """Reads one driver's parameters and collects every problem (keyed by parameter name)
    instead of stopping at the first, so the operator fixes them all in one go."""

    def __init__(self, data: Any, *, allowed: Iterable[str], secrets: Iterable[str] = ()):
        self.errors: dict[str, list[str]] = {}
        self.clean: dict[str, Any] = {}
        if not isinstance(data, dict):
            self.error("params", "Send the parameters as a JSON object.")
            data = {}
        self.data = data
        allowed, secrets = set(allowed), set(secrets)
        for key in sorted(set(data) - allowed):
            if key in secrets:
                self.error(key, "This is a secret: send it in secrets, never in params (params are stored in clear).")
            else:
                self.error(key, f"Unknown parameter; this driver takes: {', '.join(sorted(allowed))}.")

    def error(self, key: str, message: str) -> None:
        self.errors.setdefault(key, []).append(message)

    def _given(self, key: str) -> bool:
        return key in self.data and self.data[key] not in (None, "")

    def text(
        self, key: str, *, required: str = "", max_length: int = 255, pattern: str = "", hint: str = ""
    ) -> str | None:
        """A string; ``required`` is the message for a missing one (empty: optional)."""
        if not self._given(key):
            if required:
                self.error(key, required)
            return None
        value = self.data[key]
        if not isinstance(value, str):
            self.error(key, "Must be a string.")
            return None
        value = value.strip()
        if len(value) > max_length:
            self.error(key, f"At most {max_length} characters.")
        elif pattern and not re.fullmatch(pattern, value):
            self.error(key, hint or f"Must match {pattern}.")
        else:
            self.clean[key] = value
        return value

    def integer(self, key: str, *, minimum: int, maximum: int, required: str = "") -> int | None:
        if not self._given(key):
            if required:
                self.error(key, required)
            return None
        value = self.data[key]
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, "Must be a whole number.")
            return None
        if not minimum <= value <= maximum:
            self.error(key, f"Must be between {minimum} and {maximum}.")
            return None
        self.clean[key] = value
        return value

    def choice(self, key: str, choices: Iterable[str], *, default: str) -> str:
        choices = list(choices)
        if not self._given(key):
            self.clean[key] = default
            return default
        value = self.data[key]
        if value not in choices:
            self.error(key, f"{value!r} is not one of: {', '.join(choices)}.")
            return default
        self.clean[key] = value
        return value

    def boolean(self, key: str, *, default: bool) -> bool:
        if key not in self.data or self.data[key] is None:
            return default
        value = self.data[key]
        if not isinstance(value, bool):
            self.error(key, "Must be true or false.")
            return default
        self.clean[key] = value
        return value

    def host(self, key: str, *, required: str) -> str | None:
        """An IP address or a DNS name (resolved when the driver runs, not now)."""
        value = self.text(key, required=required, max_length=253)
        if value is None or key not in self.clean:
            return value
        try:
            self.clean[key] = str(ipaddress.ip_address(value))
        except ValueError:
            labels = value.rstrip(".").split(".")
            if not all(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", label) for label in labels):
                self.error(key, f"{value!r} is neither an IP address nor a host name.")
                del self.clean[key]
        return self.clean.get(key)

    def timing(self) -> None:
        """The two timing parameters every remote driver takes."""
        self.integer("timeout", minimum=1, maximum=60)
        self.integer("cycle_delay", minimum=1, maximum=300)

    def done(self) -> dict[str, Any]:
        if self.errors:
            raise ValidationError(self.errors)
        return self.clean


class Driver:
    """One board's power control. Subclasses set ``name`` and ``secret_fields`` and implement
    ``clean``, ``on``, ``off`` and ``status``; ``cycle`` defaults to off, wait, on."""

    name: ClassVar[str] = ""
    # Keys of the secrets dict this driver reads; they are encrypted at rest and never shown.
    # ``clean`` keeps only those the parameters call for; secret_uses says which call for what.
    secret_fields: ClassVar[tuple[str, ...]] = ()
    secret_uses: ClassVar[dict[str, str]] = {}
    # Whether pinet can do anything remotely (False: a person is told to).
    remote: ClassVar[bool] = True

    def __init__(self, *, params: dict, secrets: dict | None = None, target: Target | None = None):
        self.params = params
        self.secrets = secrets or {}
        self.target = target or Target()

    @classmethod
    def clean(cls, *, params: dict, secrets: dict) -> tuple[dict, dict]:
        """Validate and normalise (params, secrets); raise ValidationError keyed by parameter."""
        raise NotImplementedError

    @property
    def timeout(self) -> float:
        return float(self.params.get("timeout") or settings.PINET_POWER_TIMEOUT)

    @property
    def cycle_delay(self) -> float:
        return float(self.params.get("cycle_delay") or settings.PINET_POWER_CYCLE_DELAY)

    def on(self) -> PowerResult:
        raise NotImplementedError

    def off(self) -> PowerResult:
        raise NotImplementedError

    def status(self) -> PowerResult:
        raise NotImplementedError

    def cycle(self, *, sleep: Callable[[float], None] = time.sleep) -> PowerResult:
        """Off, wait ``cycle_delay`` seconds (a Pi needs its capacitors drained to reset), on."""
        self.off()
        sleep(self.cycle_delay)
        return self.on()

    def run(self, action: str, *, sleep: Callable[[float], None] = time.sleep) -> PowerResult:
        if action == "cycle":
            return self.cycle(sleep=sleep)
        if action in ("on", "off", "status"):
            return getattr(self, action)()
        raise PowerError(f"{action!r} is not a power action: use on, off, cycle or status.")


def unknown(detail: str) -> PowerResult:
    return PowerResult(state=PowerState.UNKNOWN, detail=detail)
