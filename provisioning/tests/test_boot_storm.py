"""benchmarks/boot_storm.py end to end at a tiny size: real dnsmasq, gunicorn, PostgreSQL and
Redis in private namespaces. Checks the report's shape and that every board booted; no timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from tests.tools import need, need_program, tcp_open

from .netlab import require_root_netns

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "boot_storm.py"


def _postgres_server_url() -> str:
    db = connection.settings_dict
    need(db["ENGINE"].endswith("postgresql"), "the boot storm needs PostgreSQL: set DATABASE_URL=postgres://…")
    host, port = db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)
    need(host.startswith("/") or tcp_open(host, port), f"PostgreSQL does not answer on {host}:{port}")
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{quote(host, safe='')}:{port}/postgres"


def test_boot_storm_benchmark_boots_every_board_and_reports_both_endpoints():
    require_root_netns()
    for program, package in (("dnsmasq", "dnsmasq-base"), ("redis-server", "redis-server"), ("zstd", "zstd")):
        need_program(program, package)
    need(Path(sys.executable).with_name("gunicorn").exists(), "gunicorn is not installed in this virtualenv")
    argv = [sys.executable, BENCH, "--boards", "5", "--window", "1", "--clients", "4", "--duration", "1"]
    done = subprocess.run([*argv, "--pg-url", _postgres_server_url()], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)

    storm = report["storm"]
    assert (storm["boards"], storm["succeeded"], storm["success_rate"]) == (5, 5, 1.0), storm["failure_examples"]
    assert storm["failures_by_phase"] == {"dhcp": 0, "tftp": 0, "installer_dhcp": 0, "http": 0}
    for phase in ("dhcp_dora_ms", "tftp_all_files_ms", "installer_dhcp_dora_ms", "http_plan_ms", "board_total_ms"):
        assert storm[phase]["n"] == 5 and storm[phase]["p50_ms"] <= storm[phase]["p99_ms"]

    load = report["load"]
    for endpoint in ("boot_token_endpoint", "bare_django_view"):
        assert load[endpoint]["requests"] > 0 and load[endpoint]["errors"] == 0, load[endpoint]
        assert load[endpoint]["req_per_s"] > 0
    assert load["throughput_ratio_token_vs_bare"] > 0
    assert set(report["targets"]) == {
        "all_boards_booted",
        "token_endpoint_p99_le_50_ms_at_50_clients",
        "token_endpoint_throughput_ge_half_of_bare_view",
    }
    assert report["targets"]["all_boards_booted"]["met"] is True
    assert {"cpus", "kernel", "python", "dnsmasq", "postgresql"} <= set(report["machine"])
