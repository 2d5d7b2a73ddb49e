"""Settings come from the environment and bad values fail loudly, naming what to set."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from pinet import settings as pinet_settings


def _load(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Import the settings module in a fresh interpreter with exactly this environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PINET_", "DATABASE_", "CELERY_", "SECRET_"))}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import pinet.settings as s; print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL)",
        ],
        cwd=settings.BASE_DIR,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("helper", "name", "raw", "message"),
    [
        (lambda: pinet_settings.env_bool("X_BOOL", False), "X_BOOL", "maybe", "is not a boolean"),
        (lambda: pinet_settings.env_int("X_INT", 1), "X_INT", "ten", "is not a whole number"),
        (lambda: pinet_settings.env_int("X_INT", 1, minimum=60), "X_INT", "5", "at least 60"),
        (lambda: pinet_settings.env_choice("X_ENV", "a", ("a", "b")), "X_ENV", "c", "is not one of: a, b"),
        (lambda: pinet_settings.env_http_url("X_URL", "http://x"), "X_URL", "ftp://host", r"is not an http\(s\) URL"),
        (lambda: pinet_settings.env_http_url("X_URL", "http://x"), "X_URL", "http://h/?a=1", "query or fragment"),
    ],
)
def test_bad_values_raise_improperly_configured(monkeypatch, helper, name, raw, message):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ImproperlyConfigured, match=message):
        helper()


def test_secret_from_file(monkeypatch, tmp_path):
    (tmp_path / "key").write_text("s3cret\n")
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "key"))
    monkeypatch.delenv("X_SECRET", raising=False)
    assert pinet_settings.env_secret("X_SECRET") == "s3cret"
    monkeypatch.setenv("X_SECRET", "also")
    with pytest.raises(ImproperlyConfigured, match="not both"):
        pinet_settings.env_secret("X_SECRET")
    monkeypatch.delenv("X_SECRET")
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        pinet_settings.env_secret("X_SECRET")


def test_embedded_defaults_need_nothing(tmp_path):
    result = _load({"PINET_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://localhost/"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert (tmp_path / "tftp").is_dir() and (tmp_path / "broker" / "queue").is_dir()
    # The generated key is kept: a second start must not log everyone out.
    key = (tmp_path / "secret_key").read_text()
    assert _load({"PINET_DATA_DIR": str(tmp_path)}).returncode == 0
    assert (tmp_path / "secret_key").read_text() == key


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SECRET_KEY (or SECRET_KEY_FILE) must be set"),
        ({"SECRET_KEY": "k"}, "ALLOWED_HOSTS must be set"),
        ({"SECRET_KEY": "k", "ALLOWED_HOSTS": "pinet.example"}, "DATABASE_URL must be set"),
        (
            {"SECRET_KEY": "k", "ALLOWED_HOSTS": "p", "DATABASE_URL": "postgres://u@h/db"},
            "CELERY_BROKER_URL must be set",
        ),
        (
            {"SECRET_KEY": "k", "ALLOWED_HOSTS": "p", "DATABASE_URL": "nosuch://x", "CELERY_BROKER_URL": "redis://h"},
            "DATABASE_URL is not usable",
        ),
        (
            {
                "SECRET_KEY": "k",
                "ALLOWED_HOSTS": "p",
                "DATABASE_URL": "postgres://u@h/db",
                "CELERY_BROKER_URL": "amqp://h",
            },
            "is not supported",
        ),
    ],
)
def test_production_mode_refuses_to_guess(tmp_path, env, message):
    result = _load({"PINET_ENV": "production", "PINET_DATA_DIR": str(tmp_path / "absent"), **env})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr
    assert not (tmp_path / "absent").exists()


def test_production_mode_with_everything_set(tmp_path):
    result = _load(
        {
            "PINET_ENV": "production",
            "SECRET_KEY": "k" * 50,
            "ALLOWED_HOSTS": "pinet.example",
            "DATABASE_URL": "postgres://pinet@db.internal/pinet",
            "CELERY_BROKER_URL": "redis://cache.internal:6379/0",
            "PINET_DATA_DIR": str(tmp_path),
        }
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "redis://cache.internal:6379/0"]


def test_bad_pinet_env_is_named(tmp_path):
    result = _load({"PINET_ENV": "prod", "PINET_DATA_DIR": str(tmp_path)})
    assert "PINET_ENV='prod' is not one of: embedded, production" in result.stderr


def test_power_keys(monkeypatch, tmp_path):
    first, second = "A" * 43 + "=", "-_" * 21 + "A="
    monkeypatch.setenv("X_POWER_KEY", f"{first}, {second}")
    assert pinet_settings.env_fernet_keys("X_POWER_KEY") == [first, second]
    monkeypatch.setenv("X_POWER_KEY", f"{first},not-a-key-but-a-secret")
    with pytest.raises(ImproperlyConfigured, match="key 2 of 2 is not a Fernet key") as error:
        pinet_settings.env_fernet_keys("X_POWER_KEY")
    assert "not-a-key-but-a-secret" not in str(error.value)
    monkeypatch.delenv("X_POWER_KEY")
    (tmp_path / "power.key").write_text(first + "\n")
    monkeypatch.setenv("X_POWER_KEY_FILE", str(tmp_path / "power.key"))
    assert pinet_settings.env_fernet_keys("X_POWER_KEY") == [first]
    monkeypatch.delenv("X_POWER_KEY_FILE")
    assert pinet_settings.env_fernet_keys("X_POWER_KEY") == []
