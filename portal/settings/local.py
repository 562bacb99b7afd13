"""Settings for `make run` on one machine: SQLite, the ORM broker, local files."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
