"""The one environment reader for settings (django-environ)."""

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")


def rates_by_name(text: str) -> dict[str, float]:
    """ "name=rate,name2=rate2" (names may hold '/' and '='; the last '=' splits) -> {name: rate}."""
    rates: dict[str, float] = {}
    for item in (text or "").split(","):
        name, sep, rate = item.rpartition("=")
        if not item.strip():
            continue
        if not sep or not name.strip():
            raise ValueError(f"Expected name=rate, got {item.strip()!r}")
        rates[name.strip()] = float(rate)
    return rates


# --- where stored audio lives (portal.storage) ---------------------------------------------------------
FILESYSTEM_BACKEND = "django.core.files.storage.FileSystemStorage"
S3_BACKEND = "portal.storage.StreamingS3Storage"
# Query parameters of STORAGE_URL and the S3Storage option each sets.
_URL_OPTIONS = {
    "endpoint_url": "endpoint_url",
    "endpoint": "endpoint_url",
    "region_name": "region_name",
    "region": "region_name",
    "addressing_style": "addressing_style",
    "signature_version": "signature_version",
}
# django-storages' own setting names, read from the environment when STORAGE_URL is not used.
S3_ENV_OPTIONS = {
    "AWS_STORAGE_BUCKET_NAME": "bucket_name",
    "AWS_S3_ENDPOINT_URL": "endpoint_url",
    "AWS_S3_REGION_NAME": "region_name",
    "AWS_LOCATION": "location",
    "AWS_S3_ADDRESSING_STYLE": "addressing_style",
    "AWS_S3_SIGNATURE_VERSION": "signature_version",
}


def storage_from_url(url: str) -> dict:
    """The STORAGES["default"] entry for STORAGE_URL.

    `s3://[ACCESS_KEY:SECRET@]BUCKET[/PREFIX][?endpoint_url=http://host:9000&region=us-east-1&addressing_style=path]`;
    without credentials in the URL, boto3's usual sources apply (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
    an instance role). Empty or `file://`: local files under MEDIA_ROOT.
    """
    url = (url or "").strip()
    if not url or url.startswith("file:"):
        return {"BACKEND": FILESYSTEM_BACKEND}
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.hostname:
        raise ImproperlyConfigured(
            f"STORAGE_URL must look like s3://BUCKET[/PREFIX]?endpoint_url=...; got scheme {parts.scheme!r}. "
            "Leave it unset to keep audio on local disk (MEDIA_ROOT)."
        )
    options: dict = {"bucket_name": parts.hostname, "file_overwrite": True, "default_acl": None}
    if parts.path.strip("/"):
        options["location"] = parts.path.strip("/")
    if parts.username:
        options["access_key"] = unquote(parts.username)
        options["secret_key"] = unquote(parts.password or "")
    for key, value in parse_qsl(parts.query):
        if key not in _URL_OPTIONS:
            raise ImproperlyConfigured(
                f"STORAGE_URL has an unknown parameter {key!r}; known: {', '.join(sorted(_URL_OPTIONS))}."
            )
        options[_URL_OPTIONS[key]] = value
    return {"BACKEND": S3_BACKEND, "OPTIONS": options}


def storage_from_env(env) -> dict:
    """STORAGES["default"]: STORAGE_URL if set, else django-storages' AWS_* variables if a bucket is named,
    else local disk."""
    url = env("STORAGE_URL", default="")
    if url:
        return storage_from_url(url)
    if not env("AWS_STORAGE_BUCKET_NAME", default=""):
        return {"BACKEND": FILESYSTEM_BACKEND}
    options = {option: env(name) for name, option in S3_ENV_OPTIONS.items() if env(name, default="")}
    return {"BACKEND": S3_BACKEND, "OPTIONS": {"file_overwrite": True, "default_acl": None, **options}}


def database_from_env(env, *, default: str) -> dict:
    """DATABASES["default"] from DATABASE_URL, with what each engine needs here.

    SQLite: IMMEDIATE takes the write lock at BEGIN, so concurrent money transactions queue instead of failing
    with "database is locked" on lock upgrade; WAL lets reads go on.

    PostgreSQL, DB_PREPARED_STATEMENTS=true: server-side binding and prepared statements (prepared_statements()).

    PostgreSQL in a web process (TINGXIE_PROCESS=web, set by portal/asgi.py; DB_POOL=true/false overrides):
    under ASGI every request runs in a thread of its own, so a kept connection is never reused; a request
    borrows one from the process's pool (psycopg_pool) and gives it back when it ends, or while it waits in a
    long-poll (portal.longpoll): no connect and no server process per request. At most DB_POOL_MAX_SIZE per
    process; a request beyond that waits for one. Never in a process that forks workers after using the
    database (a child would share the parent's pooled sockets). Elsewhere (one thread each) DB_CONN_MAX_AGE.
    """
    db = env.db("DATABASE_URL", default=default)
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
        }
    elif env.bool("DB_POOL", default=env("TINGXIE_PROCESS", default="") == "web"):
        db["CONN_MAX_AGE"] = 0  # Django's pool requires it
        db.setdefault("CONN_HEALTH_CHECKS", True)  # Django then checks a pooled connection before lending it
        options = db.setdefault("OPTIONS", {})
        options.setdefault("connect_timeout", 5)  # a connect that hangs (server restarting) is an error, not a wait
        options["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
            "max_size": env.int("DB_POOL_MAX_SIZE", default=20),
            # A request waits this long for a connection, then answers 503: after the server dropped every
            # connection (restart, failover) the pool refills in the background with backoff.
            "timeout": env.float("DB_POOL_TIMEOUT", default=5.0),
            "max_idle": 300.0,
        }
    else:
        db.setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=0))
        db.setdefault("CONN_HEALTH_CHECKS", True)
    if db["ENGINE"].endswith("postgresql") and env.bool("DB_PREPARED_STATEMENTS", default=False):
        prepared_statements(db.setdefault("OPTIONS", {}), threshold=env.int("DB_PREPARE_THRESHOLD", default=5))
    return db


def prepared_statements(options: dict, *, threshold: int) -> None:
    """PostgreSQL, with DB_PREPARED_STATEMENTS=true: parameters bound by the server, and statements prepared once
    per connection (issue 13). Off by default.

    Django's default binds parameters on the client: every execution sends the whole statement text with its
    values quoted in, and the server parses and plans it anew. Bound by the server, a statement that a connection
    has run more than `threshold` times is prepared by psycopg (at most 100 per connection, the least recently
    used deallocated) and from then on runs from its stored plan; preparing costs one more round trip, once per
    connection and statement. psycopg forgets a connection's prepared statements after a ROLLBACK or DDL on it.

    Measured with bench/concurrency.py and a scratch harness (tiny model, 20 clients, 2 cores): PostgreSQL's CPU
    per job fell by 19-39% in 9 of 10 paired runs, but the end-to-end figures did not agree: in the bench's 4 pairs
    the submit's median and p95 were worse with it in all 4 and throughput in 3; in the harness's 6 pairs (the
    same load without the peer and the probes) throughput was higher in 4 and equal in 2. Until that is settled
    it is a switch for deployments where PostgreSQL's CPU is what runs out (many machines on one server). Not
    behind a pooler in transaction mode that does not track prepared statements (PgBouncer before 1.21): a
    prepared statement may be missing on the next transaction's server connection."""
    options.setdefault("server_side_binding", True)
    options.setdefault("prepare_threshold", threshold)
