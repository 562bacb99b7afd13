"""Settings for `make run` on one machine: SQLite, the ORM broker, local files."""

import os

from .base import *  # noqa: F403
from .base import VAR_DIR, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# The embedded SQLite database, media and mail files live here (production settings create nothing).
VAR_DIR.mkdir(exist_ok=True)
os.makedirs(FILE_UPLOAD_TEMP_DIR, exist_ok=True)  # noqa: F405  (Django's check refuses a missing one)
# `make run` loads the ASR model on the first job, as before warm start: a cluster stopped by run.sh while its
# workers were still loading did not always end within run.sh's 10 s on a loaded box (tests/test_shutdown.py).
# ASR_WARM_START=true turns warm start on here too; production and test settings have it on by default.
Q_WORKER_WARMUP = Q_WORKER_WARMUP if env.bool("ASR_WARM_START", default=False) else {}  # noqa: F405
