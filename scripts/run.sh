#!/usr/bin/env bash
# Runs the web server, the default task cluster (webhooks, sweeper) and one ASR worker cluster
# in the foreground; Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8000}"
PY=.venv/bin/python
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

.venv/bin/gunicorn portal.wsgi -b "127.0.0.1:${PORT}" -w 1 --threads 64 --access-logfile - &
pids+=($!)
$PY manage.py qcluster &
pids+=($!)
Q_CLUSTER_NAME=asr $PY manage.py qcluster &
pids+=($!)
echo "Tingxie on http://127.0.0.1:${PORT}/ (ASR_MODEL=${ASR_MODEL:-iic/SenseVoiceSmall}); Ctrl-C stops."
wait -n
