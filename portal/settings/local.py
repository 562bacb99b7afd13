"""Settings for `make run` on one machine: SQLite, the ORM broker, local files."""

import os

from .base import *  # noqa: F403
from .base import VAR_DIR, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# The embedded SQLite database, media and mail files live here (production settings create nothing).
VAR_DIR.mkdir(exist_ok=True)
os.makedirs(FILE_UPLOAD_TEMP_DIR, exist_ok=True)  # noqa: F405  (Django's check refuses a missing one)
