"""Helpers for tests that need something outside Python: an external program or a server.

Locally such a test skips with the reason; with PINET_REQUIRE_TOOLS=1 (CI) it fails
instead, so CI runs every test.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

REQUIRE_TOOLS = os.environ.get("PINET_REQUIRE_TOOLS") == "1"


def need(condition: bool, reason: str) -> None:
    if condition:
        return
    if REQUIRE_TOOLS:
        pytest.fail(f"{reason} (PINET_REQUIRE_TOOLS=1 makes this a failure)")
    pytest.skip(reason)


def need_program(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    need(path is not None, f"{name} is not installed (apt-get install {package})")
    return path


def tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def database_url(*, from_namespace: bool = False) -> str:
    """A DATABASE_URL for the test database, so a child process (worker, gunicorn) shares it.
    Inside a network namespace 127.0.0.1 is the namespace's own loopback: there PostgreSQL is
    reached through its Unix socket, which no namespace hides."""
    from urllib.parse import quote

    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    port = db.get("PORT") or 5432
    if from_namespace:
        socket_dir = os.environ.get("PINET_TEST_PG_SOCKET_DIR", "/var/run/postgresql")
        need(
            os.path.exists(f"{socket_dir}/.s.PGSQL.{port}"),
            f"PostgreSQL's Unix socket is not in {socket_dir}: processes inside test namespaces cannot reach it",
        )
        return f"postgres://{auth}@{quote(socket_dir, safe='')}:{port}/{db['NAME']}"
    return f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{port}/{db['NAME']}"
