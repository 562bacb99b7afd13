from django.apps import AppConfig

# psycopg turns a statement's placeholders into its client-side binding template once per statement text (an LRU
# cache) only when the statement has at most 50 parameters (psycopg._queries.MAX_CACHED_STATEMENT_PARAMS), and
# anew, parsing the whole text, on every execution otherwise. A submit's one statement (the row, its hold and the
# cache check) has about 70: that parsing was ~4% of the web tier's CPU under load (issue 13). Our statement texts
# are few and the cache stays bounded (128 texts, least recently used first out).
STATEMENT_PARAMS_CACHED = 256


class PortalConfig(AppConfig):
    name = "portal"

    def ready(self) -> None:
        from portal import checks  # noqa: F401  (registers system checks)

        _cache_long_statements()


def _cache_long_statements() -> None:
    try:
        from psycopg import _queries
    except ImportError:  # no PostgreSQL driver: nothing to tune
        return
    if getattr(_queries, "MAX_CACHED_STATEMENT_PARAMS", STATEMENT_PARAMS_CACHED) < STATEMENT_PARAMS_CACHED:
        _queries.MAX_CACHED_STATEMENT_PARAMS = STATEMENT_PARAMS_CACHED
