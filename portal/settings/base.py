"""Settings shared by every environment; secrets and deployment knobs come from the environment."""

import os
import secrets

from portal.env import BASE_DIR, database_from_env, env, rates_by_name, storage_from_env
from portal.logs import logging_config

VAR_DIR = BASE_DIR / "var"


def _local_secret_key() -> str:
    """A per-checkout key kept under var/ so sessions survive restarts without a literal key.

    Local and test settings only: production settings refuse to start without DJANGO_SECRET_KEY, so
    importing them never reaches this (nor writes anything).
    """
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = env("DJANGO_SECRET_KEY", default=None) or _local_secret_key()
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env("SITE_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc as static files
    # Before django_q: portal's `qcluster` command (a shutdown that always ends) replaces django-q2's.
    "portal",
    "django_q",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "tenants",
    "billing",
    "transcription",
    "streaming",
    "dashboard",
]

MIDDLEWARE = [
    # First: every response (and log line) of a request carries its X-Request-ID; API paths' errors are JSON.
    "portal.middleware.RequestIdMiddleware",
    # portal.inline_middleware: Django's own, whose hooks run in the event loop under ASGI where they do no
    # I/O (not each in a thread of the request: issue 13). Same behaviour as django.middleware.* etc.
    "portal.inline_middleware.SecurityMiddleware",
    # portal.middleware: async-capable twins of two sync-only middlewares, so that under ASGI a waiting
    # (long-poll) request holds no thread.
    "portal.middleware.WhiteNoiseMiddleware",
    "portal.inline_middleware.SessionMiddleware",
    "portal.inline_middleware.LocaleMiddleware",
    "portal.inline_middleware.CommonMiddleware",
    "portal.inline_middleware.CsrfViewMiddleware",
    "portal.inline_middleware.AuthenticationMiddleware",
    "portal.inline_middleware.MessageMiddleware",
    "portal.inline_middleware.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.middleware.UserTimezoneMiddleware",
]
# Django finds three of those by name; portal.checks runs its checks with our subclasses seen as them.
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "dashboard.context_processors.tenant",
            ],
        },
    },
]

# The database (DATABASE_URL): SQLite's write lock and WAL, or PostgreSQL connections pooled in the web tier's
# processes (portal/asgi.py sets TINGXIE_PROCESS=web; DB_POOL says otherwise) and kept by others (portal.env).
DATABASES = {"default": database_from_env(env, default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
# `manage.py qcluster` processes keep their connection this long (portal's qcluster command), not one per task.
Q_DB_CONN_MAX_AGE = env.int("Q_DB_CONN_MAX_AGE", default=600)
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "/media/"
# Stored audio: local files under MEDIA_ROOT (one machine), or an S3-compatible bucket shared by every web and
# worker machine: STORAGE_URL=s3://BUCKET[/PREFIX]?endpoint_url=... or django-storages' AWS_* variables
# (portal.env.storage_from_env). Workers stream audio from the bucket (portal.storage.StreamingS3Storage).
STORAGES = {
    "default": storage_from_env(env),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Uploads above this spool to disk instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Django's two upload handlers, hashing the audio as it arrives (submit needs its SHA-256; no second read).
FILE_UPLOAD_HANDLERS = [
    "transcription.uploads.HashingMemoryFileUploadHandler",
    "transcription.uploads.HashingTemporaryFileUploadHandler",
]
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Uploads spooled to disk go to a folder of ours (the transcription app makes it at the first request, not
# here), so the orphan sweep can remove what a killed server left there.
FILE_UPLOAD_TEMP_DIR = env("FILE_UPLOAD_TEMP_DIR", default=str(VAR_DIR / "tmp" / "uploads"))
# The orphan sweep removes stored audio no transcription references, and temporary upload files, older than this.
ORPHAN_AUDIO_MAX_AGE_SECONDS = env.int("ORPHAN_AUDIO_MAX_AGE_SECONDS", default=3600)

LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/app/"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", default="mandatory")
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_ADAPTER = "dashboard.adapters.AccountAdapter"
ACCOUNT_FORMS = {"signup": "dashboard.forms.SignupForm"}
ACCOUNT_LOGOUT_ON_GET = False
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Tingxie <noreply@tingxie.local>")

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
Q_BROKER = env("Q_BROKER", default="orm")
if Q_BROKER == "redis":
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # Lets two sites (or a benchmark) share one Redis database without touching each other's keys.
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default=""),
            # One pool per process, not per request (a request's cache objects are its own under ASGI).
            "OPTIONS": {"pool_class": "portal.redis_pools.SharedConnectionPool"},
        }
    }
else:
    # One web process with threads on the embedded defaults: a process-local cache is exact.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- ASR -----------------------------------------------------------------------------
ASR_MODEL = env("ASR_MODEL", default="iic/SenseVoiceSmall")
ASR_DEVICE = env("ASR_DEVICE", default="auto")
ASR_THREADS = env.int("ASR_THREADS", default=1)
ASR_WORKERS = env.int("ASR_WORKERS", default=1)
ASR_ENGINES = {
    "default": {
        "BACKEND": "transcription.engines.funasr.FunASREngine",
        "OPTIONS": {
            "model": ASR_MODEL,
            "device": ASR_DEVICE,
            "threads": ASR_THREADS,
            "batch_size_s": env.int("ASR_BATCH_SIZE_S", default=60),
            "batching": {
                # Cross-job batches on the ASR worker, per device kind (transcription.engines.base.BatchLimits):
                # seconds of padded audio and pieces per model call, recordings recognized together, how long a
                # worker waits for more ready ones, and the window each recording contributes per round.
                "cpu": {
                    "budget_s": env.float("ASR_BATCH_BUDGET_S_CPU", default=60.0),
                    "max_items": env.int("ASR_BATCH_MAX_ITEMS_CPU", default=32),
                    "max_jobs": env.int("ASR_BATCH_MAX_JOBS_CPU", default=16),
                    "max_wait_ms": env.float("ASR_BATCH_MAX_WAIT_MS_CPU", default=20.0),
                    "window_s": 30.0,
                },
                "cuda": {
                    "budget_s": env.float("ASR_BATCH_BUDGET_S_CUDA", default=600.0),
                    "max_items": env.int("ASR_BATCH_MAX_ITEMS_CUDA", default=64),
                    "max_jobs": env.int("ASR_BATCH_MAX_JOBS_CUDA", default=64),
                    "max_wait_ms": env.float("ASR_BATCH_MAX_WAIT_MS_CUDA", default=10.0),
                    "window_s": 60.0,
                },
                "mps": {"budget_s": 120.0, "max_items": 16, "max_jobs": 16, "max_wait_ms": 10.0, "window_s": 30.0},
            },
        },
    },
}
# Speakers: diarization (`diarize`) and tenant voiceprints (`speaker_ids`) embed speech with this model.
SPEAKER_MODEL = env("SPEAKER_MODEL", default="iic/speech_campplus_sv_zh-cn_16k-common")
SPEAKER_ENGINES = {
    "default": {
        "BACKEND": "transcription.engines.speaker.FunASRSpeakerEngine",
        "OPTIONS": {"model": SPEAKER_MODEL, "device": ASR_DEVICE, "threads": ASR_THREADS},
    },
}
# How long POST /api/v1/speakers and /voiceprint/* wait for the worker's embedding before answering.
SPEAKER_WAIT_SECONDS = env.float("SPEAKER_WAIT_SECONDS", default=30)
# Average cosine similarity below which two groups of windows are different speakers (diarization; tuned on the
# fixture CAM++: same voice 0.45-0.64, two voices 0.0 and below).
SPEAKER_CLUSTER_THRESHOLD = env.float("SPEAKER_CLUSTER_THRESHOLD", default=0.25)
# Cosine similarity to an enrolled voiceprint that names a segment's speaker (else "unknown").
VOICEPRINT_THRESHOLD = env.float("VOICEPRINT_THRESHOLD", default=0.3)
# Each worker of a cluster named here runs the callable when it spawns, before its first task, and the cluster
# takes no task until all its workers did (portal's qcluster): ASR workers load their model at start, and a
# cluster whose model cannot load exits at once saying why. ASR_WARM_START=false loads on the first job instead.
Q_WORKER_WARMUP = {"asr": "transcription.engines.engine_warm_up"} if env.bool("ASR_WARM_START", default=True) else {}
# Tokens held per second of audio, per model (hold = ceil(duration_s x rate)).
MAX_TOKENS_PER_SECOND = env.float("MAX_TOKENS_PER_SECOND", default=8.0)
# Per-model overrides, e.g. MAX_TOKENS_PER_SECOND_BY_MODEL="iic/SenseVoiceSmall=8,FunAudioLLM/Fun-ASR-Nano-2512=10".
MAX_TOKENS_PER_SECOND_BY_MODEL = rates_by_name(env("MAX_TOKENS_PER_SECOND_BY_MODEL", default=""))
MAX_UPLOAD_BYTES = env.int("MAX_UPLOAD_BYTES", default=500 * 1024 * 1024)
MAX_AUDIO_SECONDS = env.float("MAX_AUDIO_SECONDS", default=4 * 3600)
JOB_LEASE_SECONDS = env.int("JOB_LEASE_SECONDS", default=120)
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=3)
JOB_REQUEUE_AFTER_SECONDS = env.int("JOB_REQUEUE_AFTER_SECONDS", default=300)
ASR_TASK_TIMEOUT = env.int("ASR_TASK_TIMEOUT", default=3600)
# The ASR cluster can run this much nicer than the web tier on a host they share, so the model takes the CPU the
# web leaves (portal.cpu_priority). Off by default: on a host busy with other work a nice cluster starves.
ASR_NICE = env.int("ASR_NICE", default=0)
# Webhooks to loopback/private addresses are refused unless this is set (self-hosted internal receivers).
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env.bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", default=False)
OPENAI_WAIT_SECONDS = env.int("OPENAI_WAIT_SECONDS", default=600)
# An SDK retry (x-stainless-retry-count > 0) of a request whose identical job succeeded this recently gets
# that result, not a second job and charge.
OPENAI_RETRY_REPLAY_SECONDS = env.int("OPENAI_RETRY_REPLAY_SECONDS", default=600)

# --- Live streams (the stream worker: `make stream`, started by `make run` too) --------------------------------
STREAM_HOST = env("STREAM_HOST", default="127.0.0.1")
STREAM_PORT = env.int("STREAM_PORT", default=10095)
# Where browsers reach the stream worker (/app/live/), e.g. wss://stt.example.com/stream behind a proxy;
# default: the dashboard's host name on STREAM_PORT.
STREAM_PUBLIC_URL = env("STREAM_PUBLIC_URL", default="")
# Where the web tier relays OpenAI Realtime WebSockets (/v1/realtime), e.g. ws://stream-1:10095; default:
# ws://STREAM_HOST:STREAM_PORT. At most REALTIME_PROXY_MAX_CONNECTIONS relayed at once per web process.
STREAM_URL = env("STREAM_URL", default="")
REALTIME_PROXY_MAX_CONNECTIONS = env.int("REALTIME_PROXY_MAX_CONNECTIONS", default=200)
# OpenAI Realtime with turn_detection null: the most audio one commit may hold (seconds, kept in memory).
REALTIME_MAX_UNCOMMITTED_SECONDS = env.int("REALTIME_MAX_UNCOMMITTED_SECONDS", default=600)
# The streaming Paraformer giving partials (hub id or local directory; "" = no partials, finals only).
STREAM_ONLINE_MODEL = env(
    "STREAM_ONLINE_MODEL", default="iic/speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-online"
)
STREAM_DEVICE = env("STREAM_DEVICE", default=ASR_DEVICE)
STREAM_THREADS = env.int("STREAM_THREADS", default=1)  # torch threads per inference replica
STREAM_REPLICAS = env.int("STREAM_REPLICAS", default=2)  # inference threads, each with its own model copies
STREAM_MAX_SESSIONS = env.int("STREAM_MAX_SESSIONS", default=40)  # per stream-worker process; more: close 1013
STREAM_MAX_SESSIONS_PER_KEY = env.int("STREAM_MAX_SESSIONS_PER_KEY", default=20)  # across all stream workers
STREAM_MAX_SESSION_SECONDS = env.int("STREAM_MAX_SESSION_SECONDS", default=4 * 3600)
STREAM_IDLE_SECONDS = env.int("STREAM_IDLE_SECONDS", default=120)  # no message for this long: closed
STREAM_END_SILENCE_MS = env.int("STREAM_END_SILENCE_MS", default=500)  # VAD silence that ends an utterance
# Offline finals carry FunASR's "timestamp" (word times), aligned by engines/funasr_align.py for SenseVoice (~1 ms a
# final with the tiny model on CPU; funasr's own alignment cost ~25 ms). False: no word times, no alignment.
STREAM_WORD_TIMESTAMPS = env.bool("STREAM_WORD_TIMESTAMPS", default=True)
STREAM_MAX_FRAME_BYTES = env.int("STREAM_MAX_FRAME_BYTES", default=4 * 1024 * 1024)  # about 2 min of PCM16
STREAM_MAX_BUFFER_SECONDS = env.float("STREAM_MAX_BUFFER_SECONDS", default=180)  # audio waiting per session
# Audio may arrive at most this much faster than real time, beyond a burst (a whole utterance in one frame).
STREAM_MAX_SPEED = env.float("STREAM_MAX_SPEED", default=2.0)
STREAM_BURST_SECONDS = env.float("STREAM_BURST_SECONDS", default=120)

# Redis: a broker per `async_task` on the process's shared pool (no connect per enqueue).
_broker = (
    {"redis": REDIS_URL, "broker_class": "portal.redis_pools.PooledRedisBroker"}
    if Q_BROKER == "redis"
    else {"orm": "default"}
)
Q_CLUSTER = {
    "name": "default",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": 120,
    "retry": 180,
    "max_attempts": 5,
    "poll": 0.05,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 1000,
    **_broker,
    "ALT_CLUSTERS": {
        # ASR gets its own cluster so that GPU machines run only this (Q_CLUSTER_NAME=asr).
        "asr": {
            "workers": ASR_WORKERS,
            "timeout": ASR_TASK_TIMEOUT,
            "retry": ASR_TASK_TIMEOUT + 300,
            "max_attempts": 1,
            "recycle": 10_000,
            # The job row is the truth; successful task results are not stored again.
            "save_limit": -1,
        },
    },
}

# --- API -------------------------------------------------------------------------------
API_SUBMIT_RATE = env("API_SUBMIT_RATE", default="60/min")
API_READ_RATE = env("API_READ_RATE", default="1200/min")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.permissions.HasTenantApiKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "portal.pagination.Pagination",
    "PAGE_SIZE": 20,
    "UNAUTHENTICATED_USER": None,
    # `?format=` is ours (transcript formats), not DRF content negotiation.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_THROTTLE_RATES": {"submit": API_SUBMIT_RATE, "read": API_READ_RATE},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tingxie API",
    "DESCRIPTION": (
        "Speech-to-text billed per output token. Token rule v1: after NFKC, each CJK character "
        "(Han, kana, hangul) is one token; each run of letters/digits is one token (an apostrophe "
        "between letters and . , : between digits do not split it); whitespace, punctuation, "
        "symbols and emoji are free."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Request and response components apart: an upload's `file` is `format: binary` in requests.
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.openapi.error_responses",
        "transcription.api.schema_webhooks.webhooks_document",
    ],
    # The docs pages load Swagger UI and ReDoc from our static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Stripe ----------------------------------------------------------------------------
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")
STRIPE_API_VERSION = "2025-08-27.basil"

# --- Operations ------------------------------------------------------------------------
# Every process of this machine records its Prometheus instruments as files here; /metrics (or a worker
# machine's METRICS_PORT) sums them. Exported before prometheus_client is first imported, and inherited by
# child processes. Empty it when the machine's services start (scripts/run.sh does).
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "metrics"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
# /metrics answers a request carrying `Authorization: Bearer <METRICS_TOKEN>` (when set) or coming from
# one of these addresses/networks (default: this machine only).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
# A machine that runs only workers (`make worker`) serves its processes' instruments on this port (0: off).
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=0)
WORKER_METRICS_HOST = env("WORKER_METRICS_HOST", default="0.0.0.0")  # noqa: S104 - guarded by token/allowlist
# Each qcluster process records a heartbeat this often; /readyz wants an asr beat younger than the max age.
CLUSTER_HEARTBEAT_INTERVAL_S = env.int("CLUSTER_HEARTBEAT_INTERVAL_S", default=10)
CLUSTER_HEARTBEAT_MAX_AGE_S = env.int("CLUSTER_HEARTBEAT_MAX_AGE_S", default=60)
# Tokens granted to a tenant created by a web signup (a ledger grant with a memo); 0 grants nothing.
SIGNUP_FREE_TOKENS = env.int("SIGNUP_FREE_TOKENS", default=2000)
# Log lines: "plain" (a human at a terminal) or "json" (one JSON object per line; production's default).
LOG_FORMAT = env("LOG_FORMAT", default="plain")

LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = logging_config(fmt=LOG_FORMAT, level=LOG_LEVEL)
