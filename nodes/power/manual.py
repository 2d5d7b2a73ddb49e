"""The manual driver: pinet cannot switch the board, so it tells a person to."""

from __future__ import annotations

from .base import Driver, ManualPowerRequired, Params, PowerResult, unknown


class ManualDriver(Driver):
    name = "manual"
    remote = False

    @classmethod
    def clean(cls, *, params: dict, secrets: dict) -> tuple[dict, dict]:
        checked = Params(params, allowed=())
        if secrets:
            checked.error("secrets", "The manual driver stores no credentials.")
        return checked.done(), {}

    def _by_hand(self, what: str) -> ManualPowerRequired:
        board = self.target.hostname or "The board"
        return ManualPowerRequired(f"{board} has no remote power control: {what} by hand.")

    def on(self) -> PowerResult:
        raise self._by_hand("switch it on")

    def off(self) -> PowerResult:
        raise self._by_hand("switch it off")

    def cycle(self, **kwargs) -> PowerResult:
        raise self._by_hand("power-cycle it (unplug its power, wait a few seconds, plug it back in)")

    def status(self) -> PowerResult:
        return unknown("the manual driver cannot read the power state")
