"""portal.asgi: API paths skip the browser pages' middleware (issue 13), browser pages go through the whole chain;
an API answer keeps what API clients see (request id, security headers, JSON errors) and loses nothing."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.conf import settings

from portal.asgi_threads import API_PATH_PREFIXES, PathRouter, PooledThreadsASGIHandler, api_middleware
from tests.asgi_client import asgi_get

BROWSER_ONLY = ("Session", "Csrf", "Authentication", "Message", "allauth", "Timezone", "WhiteNoise")


def _chain(handler) -> list[str]:
    """The middleware classes of a handler's chain, outermost first (each is wrapped by Django's exception
    converter, whose functools.wraps keeps it as __wrapped__)."""
    names, layer = [], handler._middleware_chain
    while layer is not None:
        layer = getattr(layer, "__wrapped__", layer)
        names.append(type(layer).__module__ + "." + type(layer).__name__)
        layer = getattr(layer, "get_response", None)
    return names


def test_the_api_handler_has_the_api_middleware_only_and_the_setting_is_left_as_it_was():
    full = list(settings.MIDDLEWARE)
    api = PooledThreadsASGIHandler(middleware=api_middleware(settings.MIDDLEWARE))
    assert settings.MIDDLEWARE == full
    chain = " ".join(_chain(api))
    assert not [name for name in BROWSER_ONLY if name in chain], chain
    for kept in ("RequestIdMiddleware", "SecurityMiddleware", "LocaleMiddleware", "CommonMiddleware", "XFrameOptions"):
        assert kept in chain, chain
    assert "SessionMiddleware" in " ".join(_chain(PooledThreadsASGIHandler()))


@pytest.mark.django_db(transaction=True)
def test_api_paths_answer_as_through_the_whole_chain(api_key):
    """The same API request through both handlers: the same status, body shape and headers, but no cookie work."""
    auth = {"Authorization": f"Bearer {api_key[1]}"}
    full = PooledThreadsASGIHandler()
    to_full: list[str] = []

    async def whole_chain(scope, receive, send):
        to_full.append(scope["path"])
        return await full(scope, receive, send)

    app = PathRouter(PooledThreadsASGIHandler(middleware=api_middleware(settings.MIDDLEWARE)), whole_chain,
                     API_PATH_PREFIXES)  # fmt: skip

    async def main():
        return [await asgi_get(a, "/api/v1/balance", headers=auth) for a in (app, full)], [
            await asgi_get(app, "/api/v1/nope", headers=auth), await asgi_get(app, "/api/v1/balance"),
            await asgi_get(app, "/accounts/login/"),
        ]  # fmt: skip

    (lean, whole), (missing, unauthorized, login_page) = asyncio.run(main())
    assert to_full == ["/accounts/login/"]  # the API paths went to the API handler
    assert lean[0] == whole[0] == 200
    assert json.loads(lean[2]).keys() == json.loads(whole[2]).keys()
    # Request id, security and framing headers, rate-limit headers: all there; the whole chain adds only Vary.
    assert set(whole[1]) - set(lean[1]) <= {"vary"} and set(lean[1]) <= set(whole[1]), (lean[1], whole[1])
    for name in ("x-request-id", "x-content-type-options", "x-frame-options", "referrer-policy", "ratelimit-limit"):
        assert name in lean[1], name
    assert "set-cookie" not in lean[1]
    # Errors on API paths are still the API's JSON, with the request id.
    assert missing[0] == 404 and "error" in json.loads(missing[2]) and "x-request-id" in missing[1]
    assert unauthorized[0] == 401 and json.loads(unauthorized[2])["error"]["code"] == "invalid_api_key"
    # A browser page goes through the whole chain: its form gets its CSRF cookie.
    assert login_page[0] == 200 and "csrftoken" in login_page[1].get("set-cookie", "")
