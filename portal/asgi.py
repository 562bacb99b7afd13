"""ASGI entry point: the web tier (uvicorn). Production settings unless DJANGO_SETTINGS_MODULE says otherwise
(`make run` and the tests set it)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.production")
application = get_asgi_application()
