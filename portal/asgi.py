"""ASGI entry point: the web tier (uvicorn). Production settings unless DJANGO_SETTINGS_MODULE says otherwise
(`make run` and the tests set it). WebSockets to /v1/realtime are relayed to the stream worker
(portal.realtime_proxy); everything else is Django."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.production")
# This process serves requests (a thread each): its settings pool database connections (DB_POOL).
os.environ.setdefault("TINGXIE_PROCESS", "web")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does

from portal.asgi_threads import PooledThreadsASGIHandler  # noqa: E402  (after Django's setup)
from portal.realtime_proxy import RealtimeProxy  # noqa: E402

django_application = PooledThreadsASGIHandler()

application = RealtimeProxy(django_application)
