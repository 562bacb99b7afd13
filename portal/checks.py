"""Django's security checks, told about portal.inline_middleware.

Django's deploy checks find SecurityMiddleware, XFrameOptionsMiddleware and CsrfViewMiddleware by their dotted
names, and MIDDLEWARE names our subclasses of them instead: Django would warn that they are missing (silenced
in the settings: security.W001-W003) and skip every check that depends on them (HSTS, nosniff, the HTTPS
redirect, X-Frame-Options DENY, the CSRF cookie...). Here those checks run with the subclasses seen under the
names they extend; a middleware that is really missing is still reported (portal.W001-W003).
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register
from django.core.checks.security import base, csrf
from django.test.utils import override_settings
from django.utils.module_loading import import_string

_EXTENDED = (
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
)
_CHECKS = (
    base.check_security_middleware, base.check_xframe_options_middleware, csrf.check_csrf_middleware,
    base.check_sts, base.check_sts_include_subdomains, base.check_sts_preload, base.check_content_type_nosniff,
    base.check_ssl_redirect, base.check_xframe_deny, base.check_referrer_policy,
    base.check_cross_origin_opener_policy, csrf.check_csrf_cookie_secure,
)  # fmt: skip
_RENAMED = {"security.W001": "portal.W001", "security.W002": "portal.W002", "security.W003": "portal.W003"}


def _as_django_names(middleware: list[str]) -> list[str]:
    out = []
    for path in middleware:
        cls = import_string(path)  # a class, or a function (allauth's AccountMiddleware)
        extended = [name for name in _EXTENDED if isinstance(cls, type) and issubclass(cls, import_string(name))]
        out.append(extended[0] if extended else path)
    return out


@register(Tags.security, deploy=True)
def check_security_with_inline_middlewares(app_configs, **kwargs):
    seen_as = _as_django_names(list(settings.MIDDLEWARE))
    if seen_as == list(settings.MIDDLEWARE):
        return []  # Django's own checks see the real list
    messages = []
    with override_settings(MIDDLEWARE=seen_as):
        for check in _CHECKS:
            found = check(app_configs)
            messages.extend(found if isinstance(found, list) else [found])
    return [
        Warning(m.msg, hint=m.hint, id=_RENAMED[m.id]) if m.id in _RENAMED else m for m in messages if m is not None
    ]
