"""The listener's decisions with a hand-driven clock: per-MAC and global write limits, bounded
memory, the site switch, and surviving bad packets and database trouble."""

from __future__ import annotations

import logging
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError

from nodes.discovery import Sighting
from nodes.discovery_listener import DiscoveryListener
from nodes.models import DiscoveredBoard, Site

from .test_discovery import PI4, _frame

PI_VENDOR = "PXEClient:Arch:00000:UNDI:002001"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Stands in for discovery_record: remembers (mac, count) per call, can be told to fail."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []
        self.fail_with: list[Exception] = []

    def __call__(self, *, site, sighting, count, seen_at):
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.calls.append((sighting.mac, count))


def sighting(n: int = 1, **extra) -> Sighting:
    fields = {"mac": f"52:54:00:00:{n // 256:02x}:{n % 256:02x}", "message_type": 1, "vendor_class": PI_VENDOR}
    fields.update({"arch": 0, "board_model": "x86-bios", "netboot": True, **extra})
    return Sighting(**fields)


def listener(site, clock, record=None, **overrides) -> DiscoveryListener:
    options = {"write_interval": 10, "writes_per_second": 100, "memory": 64, "refresh": 30}
    options.update(overrides)
    return DiscoveryListener(site=site, clock=clock, record=record, **options)


@pytest.fixture
def enabled_site(site):
    Site.objects.filter(pk=site.pk).update(discovery_enabled=True)
    site.refresh_from_db()
    return site


def test_one_mac_is_written_at_most_once_per_interval(enabled_site):
    clock, record = Clock(), Recorder()
    heard = listener(enabled_site, clock, record)
    for _ in range(5):
        heard.handle(sighting())
    assert record.calls == [("52:54:00:00:00:01", 1)]
    clock.now += 5
    heard.flush()
    assert len(record.calls) == 1
    clock.now += 5
    heard.flush()
    assert record.calls[1] == ("52:54:00:00:00:01", 4)  # the requests in between, counted
    heard.handle(sighting())
    assert len(record.calls) == 2


def test_all_writes_together_stay_under_the_global_rate(enabled_site):
    clock, record = Clock(), Recorder()
    heard = listener(enabled_site, clock, record, writes_per_second=2)
    for n in range(10):
        heard.handle(sighting(n))
    assert len(record.calls) == 2 and heard.stats["deferred"] == 8
    for _ in range(4):
        clock.now += 1
        heard.flush()
    assert len(record.calls) == 10
    assert sorted(mac for mac, _ in record.calls) == sorted(sighting(n).mac for n in range(10))


def test_memory_is_bounded_and_forgetting_is_logged(enabled_site, caplog):
    clock, record = Clock(), Recorder()
    heard = listener(enabled_site, clock, record, writes_per_second=1, memory=4)
    with caplog.at_level(logging.WARNING, logger="pinet.discovery"):
        for n in range(500):
            heard.handle(sighting(n))
            assert len(heard.heard) <= 4
    assert len(record.calls) == 1
    assert heard.stats["dropped_forgotten"] == 500 - 1 - 4
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "PINET_DISCOVERY_MEMORY" in warnings[0]


def test_a_full_site_is_logged_once_a_minute(enabled_site, settings, caplog):
    settings.PINET_DISCOVERY_MAX_NEW = 3
    clock = Clock()
    heard = listener(enabled_site, clock)
    with caplog.at_level(logging.WARNING, logger="pinet.discovery"):
        for n in range(20):
            heard.handle(sighting(n))
        clock.now += 61
        heard.handle(sighting(99))
    assert DiscoveredBoard.objects.count() == 3
    assert heard.stats["dropped_full"] == 18
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all("PINET_DISCOVERY_MAX_NEW" in m for m in messages)


def test_nothing_is_written_while_discovery_is_off_and_the_switch_is_reread(site):
    clock = Clock()
    heard = listener(site, clock, refresh=30)
    heard.handle(sighting(1))
    assert heard.stats["disabled"] == 1 and not DiscoveredBoard.objects.exists()
    Site.objects.filter(pk=site.pk).update(discovery_enabled=True)
    heard.handle(sighting(2))
    assert not DiscoveredBoard.objects.exists()  # not re-read yet
    clock.now += 30
    heard.handle(sighting(3))
    assert list(DiscoveredBoard.objects.values_list("mac", flat=True)) == [sighting(3).mac]
    Site.objects.filter(pk=site.pk).update(discovery_enabled=False)
    clock.now += 30
    heard.handle(sighting(4))
    assert DiscoveredBoard.objects.count() == 1 and heard.heard == {}


def test_a_lost_database_keeps_the_count_for_later(enabled_site):
    clock, record = Clock(), Recorder()
    heard = listener(enabled_site, clock, record)
    record.fail_with = [OperationalError("server closed the connection unexpectedly")]
    heard.handle(sighting())
    heard.handle(sighting())
    assert record.calls == [] and heard.stats["db_errors"] == 1
    clock.now += 10
    heard.flush()
    assert record.calls == [("52:54:00:00:00:01", 2)]


def test_a_better_request_is_kept_for_the_deferred_write(enabled_site):
    clock = Clock()
    calls = []
    heard = listener(enabled_site, clock, lambda **kw: calls.append(kw["sighting"]))
    heard.handle(sighting(board_model="pi4b", is_pi=True))
    heard.handle(Sighting(mac=sighting().mac, message_type=3))  # a REQUEST without PXE options
    clock.now += 10
    heard.flush()
    assert [s.board_model for s in calls] == ["pi4b", "pi4b"]


class FakeSource:
    """Hands out frames, then sets the stop event."""

    def __init__(self, frames, stop):
        self.frames, self.stop = list(frames), stop

    def receive(self, timeout):
        if self.frames:
            return self.frames.pop(0)
        self.stop.set()
        return None


def test_run_survives_garbage_and_a_failing_write_and_flushes_on_stop(enabled_site, caplog):
    stop = threading.Event()
    record = Recorder()
    record.fail_with = [RuntimeError("a bug")]
    heard = listener(enabled_site, Clock(), record, write_interval=60)
    other = PI4[:28] + bytes.fromhex("dca632aabbcc") + PI4[34:]
    frames = [b"", b"\x00" * 60, _frame(b"garbage"), _frame(PI4), _frame(other), _frame(PI4), _frame(PI4)]
    with caplog.at_level(logging.ERROR, logger="pinet.discovery"):
        heard.run(FakeSource(frames, stop), stop, poll=0.01)
    assert heard.stats["unparsed"] == 3 and heard.stats["errors"] == 1
    assert "could not handle" in caplog.text
    # The first Pi 4 frame hit the bug; its two repeats were held back and written on the way out.
    assert record.calls == [("dc:a6:32:aa:bb:cc", 1), ("dc:a6:32:01:36:c2", 2)]


def test_real_records_through_the_listener(enabled_site):
    clock = Clock()
    heard = listener(enabled_site, clock, write_interval=0)
    for _ in range(3):
        heard.handle_frame(_frame(PI4))
    board = DiscoveredBoard.objects.get()
    assert (board.serial, board.seen_count, board.board_model) == ("9ffefdef", 3, "pi4b")


def test_the_command_names_the_sites_when_the_slug_is_wrong(site):
    with pytest.raises(CommandError, match="lab"):
        call_command("pinet_discover", "--site", "nope")
