"""Production: every secret and host name comes from the environment; HTTPS only; nothing is written at import."""

from django.core.exceptions import ImproperlyConfigured

from portal.env import env

# Checked before base is imported: base falls back to a per-checkout key file for local use, which
# production must neither read nor create.
if not env("DJANGO_SECRET_KEY", default=""):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set. Production settings (portal.settings.production) need a secret key "
        "from the environment: at least 50 random characters, e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
    )
if not env.list("DJANGO_ALLOWED_HOSTS", default=[]):
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS is not set. List the host names this site answers to, comma-separated "
        "(e.g. DJANGO_ALLOWED_HOSTS=stt.example.com)."
    )

from portal.logs import logging_config  # noqa: E402

from .base import *  # noqa: E402, F403
from .base import LOG_LEVEL  # noqa: E402

SECRET_KEY = env("DJANGO_SECRET_KEY")
# An existing folder of the deployment's (nothing is created here); unset, Django spools to the system temp
# directory and the orphan sweep cannot clean what a killed server leaves there.
FILE_UPLOAD_TEMP_DIR = env("FILE_UPLOAD_TEMP_DIR", default=None)
DEBUG = False
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

# HTTPS. TLS ends at the reverse proxy, which must set X-Forwarded-Proto (and strip a client's own).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Load balancers and Prometheus probe these over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# Start lower (e.g. 60) while trying HTTPS out: browsers remember this for its whole length.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")

# One JSON object per line (request id, tenant, job id, durations as fields) unless LOG_FORMAT=plain.
LOG_FORMAT = env("LOG_FORMAT", default="json")
LOGGING = logging_config(fmt=LOG_FORMAT, level=LOG_LEVEL)
