"""Test settings: the production module plus fast hashers and per-test-worker directories.

DATABASE_URL and CELERY_BROKER_URL still come from the environment, so the same suite runs
on the embedded defaults (SQLite, file-system broker) and on PostgreSQL + Redis (CI).
"""

import os
from pathlib import Path

# Each pytest-xdist worker gets its own data dir, so broker folders and SQLite files of
# parallel workers never meet.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
os.environ.setdefault("PINET_DATA_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test" / _worker))
os.environ.setdefault("PINET_ENV", "embedded")

from .settings import *  # noqa: E402,F403
from .settings import DATABASES, PINET_DATA_DIR  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so a real worker process can open the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(PINET_DATA_DIR / "test.sqlite3")}
