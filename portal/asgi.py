"""ASGI entry point: the web tier (uvicorn). Production settings unless DJANGO_SETTINGS_MODULE says otherwise
(`make run` and the tests set it). WebSockets to /v1/realtime are relayed to the stream worker
(portal.realtime_proxy); everything else is Django, API paths through a handler without the browser pages' middleware."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.production")
# This process serves requests (a thread each): its settings pool database connections (DB_POOL).
os.environ.setdefault("TINGXIE_PROCESS", "web")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does

from django.conf import settings  # noqa: E402

from portal.asgi_threads import API_PATH_PREFIXES, PathRouter, PooledThreadsASGIHandler, api_middleware  # noqa: E402
from portal.gc_freeze import freeze_web_start_up  # noqa: E402
from portal.realtime_proxy import RealtimeProxy  # noqa: E402

django_application = PooledThreadsASGIHandler()
# API paths skip the browser pages' middleware (portal.asgi_threads.api_middleware).
api_application = PooledThreadsASGIHandler(middleware=api_middleware(settings.MIDDLEWARE))

application = RealtimeProxy(PathRouter(api_application, django_application, API_PATH_PREFIXES))

freeze_web_start_up()  # last: what start-up made lives as long as the process (portal.gc_freeze)
