# Tingxie. `make run` and `make test` work on a fresh machine: they create .venv themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PORT
# `make web` (production): address, processes (more than 1 needs Q_BROKER=redis: throttling lives in the
# cache), and the proxies trusted for X-Forwarded-For/-Proto.
WEB_HOST ?= 127.0.0.1
WEB_WORKERS ?= $(or $(WEB_CONCURRENCY),1)
FORWARDED_ALLOW_IPS ?= 127.0.0.1

.PHONY: setup venv system-deps migrate run worker stream web test lint bench clean

setup: venv system-deps migrate

venv: $(VENV)/.installed

$(VENV)/.installed: requirements/base.txt requirements/asr.txt requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	$(PY) -m pip install -r requirements/dev.txt
	touch $@

# Debian packages the worker and the tests use; installed only when missing (needs root).
SYSTEM_PACKAGES := espeak-ng sox ffmpeg chromium fonts-noto-cjk
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

migrate: venv
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0

run: setup
	DJANGO_SETTINGS_MODULE=portal.settings.local ./scripts/run.sh

# The production web tier: uvicorn (ASGI), production settings unless DJANGO_SETTINGS_MODULE says otherwise.
web: venv
	$(VENV)/bin/uvicorn portal.asgi:application --host $(WEB_HOST) --port $(PORT) --workers $(WEB_WORKERS) \
	  --lifespan off --proxy-headers --forwarded-allow-ips "$(FORWARDED_ALLOW_IPS)" --timeout-graceful-shutdown 10 \
	  --no-access-log

# A worker machine loads its model when the cluster starts (ASR_WARM_START=false: on the first job instead).
worker: venv
	Q_CLUSTER_NAME=asr ASR_WARM_START=$${ASR_WARM_START:-true} $(PY) manage.py qcluster

# A stream worker (what a GPU/stream machine runs next to `make worker`): FunASR's runtime WebSocket protocol on
# STREAM_HOST:STREAM_PORT (default 127.0.0.1:10095); production settings unless DJANGO_SETTINGS_MODULE says otherwise.
stream: venv
	DJANGO_SETTINGS_MODULE=$${DJANGO_SETTINGS_MODULE:-portal.settings.production} $(PY) manage.py stream

test: setup
	DJANGO_SETTINGS_MODULE=portal.settings.test $(VENV)/bin/pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) var test-output staticfiles
