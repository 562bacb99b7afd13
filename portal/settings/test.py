"""Settings for the test suite (pytest-django); DATABASE_URL picks SQLite or PostgreSQL."""

import os

from .base import *  # noqa: F403
from .base import BASE_DIR, env

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
os.makedirs(FILE_UPLOAD_TEMP_DIR, exist_ok=True)  # noqa: F405  (Django's check refuses a missing one)
# One metrics folder per test run; worker subprocesses inherit it through the environment.
PROMETHEUS_MULTIPROC_DIR = env(
    "TINGXIE_TEST_METRICS_DIR", default=str(BASE_DIR / "var" / f"test-metrics-{os.getpid()}")
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["TINGXIE_TEST_METRICS_DIR"] = PROMETHEUS_MULTIPROC_DIR
CLUSTER_HEARTBEAT_INTERVAL_S = env.int("CLUSTER_HEARTBEAT_INTERVAL_S", default=1)
ASR_MODEL = env("ASR_MODEL", default=str(BASE_DIR / "tests" / "fixtures" / "models" / "sensevoice_trained"))
ASR_ENGINES["default"]["OPTIONS"]["model"] = ASR_MODEL  # noqa: F405
SPEAKER_MODEL = env("SPEAKER_MODEL", default=str(BASE_DIR / "tests" / "fixtures" / "models" / "campplus_trained"))
SPEAKER_ENGINES["default"]["OPTIONS"]["model"] = SPEAKER_MODEL  # noqa: F405
API_SUBMIT_RATE = env("API_SUBMIT_RATE", default="1000/min")
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"submit": API_SUBMIT_RATE, "read": "10000/min"}  # noqa: F405
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(BASE_DIR / "var" / "test-media"))
JOB_LEASE_SECONDS = env.int("JOB_LEASE_SECONDS", default=30)
# Test workers share a busy machine with other processes: a nice ASR cluster would starve there.
ASR_NICE = env.int("ASR_NICE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not :memory:, so worker subprocesses in end-to-end tests see the same database.
    # One file per test run (runs may overlap on a developer machine).
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3")}  # noqa: F405
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_tingxie_{os.getpid()}"}  # noqa: F405
# Test webhook receivers listen on 127.0.0.1; tests that check the guard turn this off.
WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
