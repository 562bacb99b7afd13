"""portal.settings.production: secrets and hosts from the environment, HTTPS only, `check --deploy` clean,
nothing written at import; asgi.py and wsgi.py default to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

SECRET = "prod-test-" + "k3Y" * 20
PRODUCTION_ENV = {"DJANGO_SECRET_KEY": SECRET, "DJANGO_ALLOWED_HOSTS": "stt.example.com,api.example.com"}


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECURE_"))}
    base.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean():
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        DJANGO_SETTINGS_MODULE="portal.settings.production",
        **PRODUCTION_ENV,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_secret_key_is_required_with_a_clear_message():
    env = {"DJANGO_SETTINGS_MODULE": "portal.settings.production", "DJANGO_ALLOWED_HOSTS": "stt.example.com"}
    result = run(["manage.py", "check"], **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is not set" in result.stderr


def test_allowed_hosts_are_required():
    result = run(["manage.py", "check"], DJANGO_SETTINGS_MODULE="portal.settings.production", DJANGO_SECRET_KEY=SECRET)
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS is not set" in result.stderr


SHOW_SETTINGS = """
import json, os, sys
writes = []
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND
def audit(event, args):
    if str(args[0]).startswith("/dev/"):  # multiprocessing's semaphores (/dev/shm), /dev/null
        return
    if event == "open":
        path, mode, flags = args
        if (any(c in mode for c in "wax+") if isinstance(mode, str) else (flags or 0) & WRITE_FLAGS):
            writes.append(str(path))
    elif event in ("os.mkdir", "os.rename", "os.remove", "shutil.rmtree"):
        writes.append(event + " " + str(args[0]))
sys.addaudithook(audit)
import portal.{module}
from django.conf import settings
names = ["SETTINGS_MODULE", "DEBUG", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER",
         "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"]
print(json.dumps({{"settings": {{n: getattr(settings, n) for n in names}}, "writes": writes}}))
"""


def show(module: str, **env: str) -> dict:
    result = run(["-c", SHOW_SETTINGS.format(module=module)], PYTHONDONTWRITEBYTECODE="1", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_asgi_and_wsgi_default_to_production_settings_and_write_nothing():
    for module in ("asgi", "wsgi"):
        out = show(module, **PRODUCTION_ENV)
        assert out["writes"] == [], "importing the app with production settings writes files"
        assert out["settings"] == {
            "SETTINGS_MODULE": "portal.settings.production",
            "DEBUG": False,
            "ALLOWED_HOSTS": ["stt.example.com", "api.example.com"],
            "SECURE_SSL_REDIRECT": True,
            "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
            "SECURE_HSTS_SECONDS": 31_536_000,
            "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
            "SESSION_COOKIE_SECURE": True,
            "CSRF_COOKIE_SECURE": True,
        }


def test_asgi_without_a_secret_key_refuses_to_start():
    result = run(["-c", "import portal.asgi"], DJANGO_ALLOWED_HOSTS="stt.example.com")
    assert result.returncode != 0 and "DJANGO_SECRET_KEY is not set" in result.stderr


def test_explicit_settings_module_wins():
    out = show("asgi", DJANGO_SETTINGS_MODULE="portal.settings.local")
    assert out["settings"]["SETTINGS_MODULE"] == "portal.settings.local"
    assert out["settings"]["DEBUG"] is True
