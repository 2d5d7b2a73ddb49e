"""Compare-and-swap state transitions shared by every lifecycle (STYLE.md R3).

Each lifecycle keeps its own TRANSITIONS table in its app's choices.py; this is the one
guard that applies it. No other code assigns a state field.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import models
from django.utils import timezone


class InvalidTransition(Exception):
    """A state change that the lifecycle's table forbids, or that lost a race."""


def transition(
    *,
    obj: models.Model,
    table: Mapping[str, frozenset[str]],
    to: str,
    field: str = "status",
    **changes: object,
) -> None:
    current = getattr(obj, field)
    if to not in table.get(current, ()):
        raise InvalidTransition(f"{obj._meta.verbose_name} {obj.pk}: cannot go from {current} to {to}.")
    values = {field: to, **changes}
    if any(f.name == "updated" for f in obj._meta.concrete_fields):
        values.setdefault("updated", timezone.now())
    updated = type(obj)._default_manager.filter(pk=obj.pk, **{field: current}).update(**values)
    if updated != 1:
        raise InvalidTransition(f"{obj._meta.verbose_name} {obj.pk} changed concurrently (it is no longer {current}).")
    for name, value in values.items():
        setattr(obj, name, value)
