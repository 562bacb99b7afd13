"""WSGI entry point (the web tier is served over ASGI, see asgi.py; this stays for WSGI-only hosts).

Production settings unless DJANGO_SETTINGS_MODULE says otherwise."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.production")
application = get_wsgi_application()
