"""pinet settings. Every value comes from the environment; README "Configuration" lists them.

Two modes, chosen by PINET_ENV:
- ``embedded`` (default): SQLite and a file-system broker under PINET_DATA_DIR, a secret key
  generated once into the data dir. One command gives a working panel and worker.
- ``production``: SECRET_KEY, DATABASE_URL, CELERY_BROKER_URL and ALLOWED_HOSTS must be set;
  nothing is invented and no directory is created behind the operator's back.

A bad value raises ImproperlyConfigured naming the variable and what to set it to.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None else value.strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: set it to 1 or 0.")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is too small: it must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env_str(name, default) or default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of: {', '.join(choices)}.")
    return value


def env_secret(name: str) -> str | None:
    """Read NAME, or the file named by NAME_FILE (for systemd credentials and Docker secrets)."""
    value = os.environ.get(name)
    path = os.environ.get(f"{name}_FILE")
    if value and path:
        raise ImproperlyConfigured(f"Set either {name} or {name}_FILE, not both.")
    if path:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc.strerror}.") from None
        if not value:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} is empty.")
    return value or None


def env_fernet_keys(name: str) -> list[str]:
    """NAME (or NAME_FILE): Fernet keys, comma-separated. The first encrypts; every one decrypts,
    so a new key can go in front while the old one still reads what it wrote."""
    raw = env_secret(name)
    keys = [key.strip() for key in (raw or "").split(",") if key.strip()]
    for number, key in enumerate(keys, 1):
        try:
            valid = len(base64.b64decode(key.encode(), altchars=b"-_", validate=True)) == 32
        except (ValueError, binascii.Error):
            valid = False
        if not valid:
            # Never echo the value: it is a secret, and may be one of several.
            raise ImproperlyConfigured(
                f"{name}: key {number} of {len(keys)} is not a Fernet key (32 bytes, url-safe base64); generate "
                "one with: python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
            )
    return keys


def env_path(name: str, default: Path) -> Path:
    raw = env_str(name)
    if not raw:
        return default
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (BASE_DIR / path).resolve()
    return path


def env_http_url(name: str, default: str) -> str:
    value = (env_str(name) or default).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not an http(s) URL with a host, e.g. https://pinet.example.net."
        )
    if parts.query or parts.fragment:
        raise ImproperlyConfigured(f"{name}={value!r} must not contain a query or fragment.")
    return value


PINET_ENV = env_choice("PINET_ENV", "embedded", ("embedded", "production"))
EMBEDDED = PINET_ENV == "embedded"

# --- Storage: the data dir holds the TFTP tree, NFS roots, image store and rendered configs.
PINET_DATA_DIR = env_path("PINET_DATA_DIR", BASE_DIR / "var")
PINET_TFTP_ROOT = env_path("PINET_TFTP_ROOT", PINET_DATA_DIR / "tftp")
PINET_NFS_ROOT = env_path("PINET_NFS_ROOT", PINET_DATA_DIR / "nfs")
PINET_IMAGE_ROOT = env_path("PINET_IMAGE_ROOT", PINET_DATA_DIR / "images")
PINET_CONFIG_ROOT = env_path("PINET_CONFIG_ROOT", PINET_DATA_DIR / "config")
PINET_BROKER_DIR = PINET_DATA_DIR / "broker"
PINET_DIRECTORIES = {
    "PINET_DATA_DIR": PINET_DATA_DIR,
    "PINET_TFTP_ROOT": PINET_TFTP_ROOT,
    "PINET_NFS_ROOT": PINET_NFS_ROOT,
    "PINET_IMAGE_ROOT": PINET_IMAGE_ROOT,
    "PINET_CONFIG_ROOT": PINET_CONFIG_ROOT,
}

if EMBEDDED:
    # The quickstart must work from an empty checkout; production leaves this to the
    # operator and the pinet.E001 system check.
    for _directory in (
        *PINET_DIRECTORIES.values(),
        PINET_BROKER_DIR / "queue",
        PINET_BROKER_DIR / "processed",
        PINET_BROKER_DIR / "control",
    ):
        _directory.mkdir(parents=True, exist_ok=True)

# --- Secrets
SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not EMBEDDED:
        raise ImproperlyConfigured(
            "SECRET_KEY (or SECRET_KEY_FILE) must be set when PINET_ENV=production; "
            'generate one with: python3 -c "import secrets; print(secrets.token_urlsafe(50))"'
        )
    _key_file = PINET_DATA_DIR / "secret_key"
    if not _key_file.exists():
        # O_EXCL: two processes starting at once must not end up with different keys.
        try:
            fd = os.open(_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(50))
        except FileExistsError:
            pass
    SECRET_KEY = _key_file.read_text().strip()

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if EMBEDDED else [])
if not EMBEDDED and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when PINET_ENV=production, e.g. pinet.example.net.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# The URL booting nodes and installers use to reach pinet (DHCP option 224 is built on it).
PINET_BOOT_URL_BASE = env_http_url("PINET_BOOT_URL_BASE", "http://127.0.0.1:8000")

# How to restart a site's dnsmasq after its main file changed ("{site}" is the slug), e.g.
# "systemctl restart pinet-dnsmasq@{site}". Empty: SIGTERM it and let its supervisor
# (systemd Restart=always) start it again. Host and option changes only need a SIGHUP.
PINET_DNSMASQ_RESTART = env_str("PINET_DNSMASQ_RESTART", "") or ""
# Run after the NFS exports file changed, e.g. "exportfs -ra"; empty: do not reload NFS.
PINET_EXPORTFS_RELOAD = env_str("PINET_EXPORTFS_RELOAD", "") or ""

# Image imports: the largest uncompressed image accepted, the free space always left on the
# image store, and how long an "importing" image may go without progress before it is
# taken for the work of a dead worker and retried.
PINET_IMPORT_MAX_BYTES = env_int("PINET_IMPORT_MAX_BYTES", 64 * 2**30, minimum=2**20)
PINET_IMPORT_RESERVE_BYTES = env_int("PINET_IMPORT_RESERVE_BYTES", 2**30)
PINET_IMPORT_STALE_SECONDS = env_int("PINET_IMPORT_STALE_SECONDS", 120, minimum=1)
PINET_IMPORT_MAX_ATTEMPTS = env_int("PINET_IMPORT_MAX_ATTEMPTS", 3, minimum=1)

# Install jobs: how long a boot token lives, and how long a job may go without progress.
PINET_BOOT_TOKEN_HOURS = env_int("PINET_BOOT_TOKEN_HOURS", 2, minimum=1)
PINET_INSTALL_TIMEOUT_MINUTES = env_int("PINET_INSTALL_TIMEOUT_MINUTES", 30, minimum=1)
# Requests one boot token may make per minute (boot endpoints need no login).
PINET_BOOT_RATE_PER_MINUTE = env_int("PINET_BOOT_RATE_PER_MINUTE", 600, minimum=1)

# Discovery listener (manage.py pinet_discover): a flood of DHCP requests from random MACs
# must not grow memory or the database without bound. New (unadopted, not ignored) boards
# kept per site; seconds between two writes about one MAC; writes per second in all; MACs
# remembered for that rate limit; seconds between re-reads of the site (discovery on/off).
PINET_DISCOVERY_MAX_NEW = env_int("PINET_DISCOVERY_MAX_NEW", 1000, minimum=1)
PINET_DISCOVERY_WRITE_INTERVAL = env_int("PINET_DISCOVERY_WRITE_INTERVAL", 60)
PINET_DISCOVERY_WRITES_PER_SECOND = env_int("PINET_DISCOVERY_WRITES_PER_SECOND", 20, minimum=1)
PINET_DISCOVERY_MEMORY = env_int("PINET_DISCOVERY_MEMORY", 4096, minimum=16)
PINET_DISCOVERY_REFRESH = env_int("PINET_DISCOVERY_REFRESH", 10, minimum=1)

# --- Database
_database_url = env_str("DATABASE_URL")
if not _database_url and not EMBEDDED:
    raise ImproperlyConfigured("DATABASE_URL must be set when PINET_ENV=production, e.g. postgres://pinet@/pinet.")
if _database_url:
    try:
        _database = dj_database_url.parse(_database_url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not usable: {exc}") from None
else:
    _database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(PINET_DATA_DIR / "pinet.sqlite3")}
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write the same file: WAL lets readers run during a
    # write, IMMEDIATE transactions avoid "database is locked" upgrades mid-transaction.
    _database.setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery. The database row is the truth; the broker only carries ids.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
if not CELERY_BROKER_URL and not EMBEDDED:
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL must be set when PINET_ENV=production, e.g. redis://127.0.0.1:6379/0."
    )
if CELERY_BROKER_URL:
    if urlsplit(CELERY_BROKER_URL).scheme not in ("redis", "rediss", "filesystem"):
        raise ImproperlyConfigured(
            f"CELERY_BROKER_URL={CELERY_BROKER_URL!r} is not supported: use redis://host:6379/0."
        )
    # Longer than the longest task, or Redis hands a still-running task to a second worker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("PINET_TASK_TIME_LIMIT", 6 * 3600) + 600}
else:
    # kombu's file-system transport: a real broker between real processes, no server.
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(PINET_BROKER_DIR / "queue"),
        "data_folder_out": str(PINET_BROKER_DIR / "queue"),
        "processed_folder": str(PINET_BROKER_DIR / "processed"),
        # Exchange bindings; kombu's default is "control" in the working directory.
        "control_folder": str(PINET_BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
# Per-process: boot-token rate counters and a few seconds of boot plans. Django's default
# holds 300 entries and culls a third when full, which a rack of boards booting at once
# (three keys each) turns into constant culling.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "OPTIONS": {"MAX_ENTRIES": env_int("PINET_CACHE_MAX_ENTRIES", 30_000)},
    }
}

CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"images.*": {"queue": "images"}}
# Tasks are idempotent, so a task whose worker died is redelivered rather than lost.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("PINET_TASK_TIME_LIMIT", 6 * 3600, minimum=60)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Remote control needs fanout exchanges, which the file-system transport lacks.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = not CELERY_BROKER_URL.startswith("filesystem")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Periodic work (celery beat; `pinet_worker` runs it in the embedded set-up).
CELERY_BEAT_SCHEDULE = {
    # An import whose worker died is retried (or failed) instead of staying "importing".
    "recover-imports": {"task": "images.recover_imports", "schedule": 60.0, "options": {"queue": "images"}},
    # The install watchdog: a job without progress past its deadline fails, the node goes back.
    "expire-install-jobs": {"task": "provisioning.expire_install_jobs", "schedule": 30.0},
}

# --- Django
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pinet.apps.PinetConfig",
    "nodes.apps.NodesConfig",
    "images.apps.ImagesConfig",
    "provisioning.apps.ProvisioningConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "pinet.middleware.RejectNulMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pinet.urls"
WSGI_APPLICATION = "pinet.wsgi.application"
ASGI_APPLICATION = "pinet.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "pinet" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", PINET_DATA_DIR / "static")

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not EMBEDDED)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
PINET_BEHIND_TLS_PROXY = env_bool("PINET_BEHIND_TLS_PROXY", False)
if PINET_BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Webhook URLs on loopback or private addresses are refused unless this is set (the billing
# system on the same private network); it stops webhooks from probing pinet's own network.
PINET_WEBHOOK_ALLOW_PRIVATE = env_bool("PINET_WEBHOOK_ALLOW_PRIVATE", False)

# --- Power control (README "Power control").
# Encrypts power-driver credentials (SNMP communities and keys, smart-plug passwords) in the
# database. Unset: embedded mode derives a key from SECRET_KEY; production stores no power
# credentials until it is set, so rotating SECRET_KEY can never make them unreadable.
PINET_POWER_KEYS = env_fernet_keys("PINET_POWER_KEY")
# No flapping: power changes to one board are at least this many seconds apart, and at most
# PINET_POWER_MAX_PER_HOUR in any hour. Status reads are not limited.
PINET_POWER_MIN_INTERVAL = env_int("PINET_POWER_MIN_INTERVAL", 30)
PINET_POWER_MAX_PER_HOUR = env_int("PINET_POWER_MAX_PER_HOUR", 10, minimum=1)
# A cycle keeps the board off this long (a Pi needs its capacitors drained); per-node override.
PINET_POWER_CYCLE_DELAY = env_int("PINET_POWER_CYCLE_DELAY", 5, minimum=1)
# Seconds to wait for a switch or plug to answer one request; per-node override.
PINET_POWER_TIMEOUT = env_int("PINET_POWER_TIMEOUT", 5, minimum=1)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "nodes.apikeys.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "pinet.pagination.Pagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "pinet.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "pinet API",
    "DESCRIPTION": "Boards, images, install jobs and tenants of a pinet installation.",
    "VERSION": "1",
    # The docs page loads Swagger UI from pinet's own static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs describe the API; they reveal no data, so anyone may read them.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pinet.api.document_errors",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
