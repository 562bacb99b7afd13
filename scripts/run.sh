#!/usr/bin/env bash
# Runs the web server (uvicorn, ASGI), the default task cluster (webhooks, sweeper), one ASR worker cluster
# and one stream worker (FunASR's WebSocket protocol on STREAM_PORT, default 10095) in the foreground, with local settings. Ctrl-C, or SIGTERM to the process group or to this
# script alone, stops them all within 10 s; whatever is left after 8 s is killed (and named).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8000}"
PY=.venv/bin/python
export DJANGO_SETTINGS_MODULE=portal.settings.local
pids=()

descendants() { # every process below the given ones
  local pid child
  for pid in "$@"; do
    for child in $(pgrep -P "$pid" 2>/dev/null); do
      echo "$child"
      descendants "$child"
    done
  done
}

alive() { # those of the given processes that still run
  local pid
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null && [[ $(ps -o stat= -p "$pid" 2>/dev/null) != Z* ]]; then echo "$pid"; fi
  done
}

wait_gone() { # wait_gone TENTHS PID...: true once none of them runs, false after TENTHS x 0.1 s
  local tenths=$1
  shift
  for ((i = 0; i < tenths; i++)); do
    [[ -z $(alive "$@") ]] && return 0
    sleep 0.1
  done
  [[ -z $(alive "$@") ]]
}

stopping=""
shutdown() { # shutdown INT|TERM|EXIT
  [[ -n $stopping ]] && return
  stopping=1
  set +e
  trap '' INT TERM
  local tree
  tree="${pids[*]} $(descendants "${pids[@]}")"
  if [[ $1 == EXIT ]]; then
    # One of them ended by itself: stop the others.
    kill -TERM $(alive "${pids[@]}") 2>/dev/null
  elif ! wait_gone 10 "${pids[@]}"; then
    # A signal sent to the whole group (Ctrl-C, systemd, docker, `timeout`, kill -- -PGID) has reached
    # every process already, and a repeat is not wanted (uvicorn would abort its requests), so wait a
    # moment first; then forward it, once, to those still running (it was sent to this script alone).
    kill -TERM $(alive "${pids[@]}") 2>/dev/null
  fi
  if ! wait_gone 70 $tree; then
    local left
    left=$(alive $tree)
    echo "run.sh: still running 8 s after the stop; killing them:" >&2
    ps -o pid=,args= -p "${left//$'\n'/,}" >&2
    kill -KILL $left 2>/dev/null
  fi
  wait 2>/dev/null
}
trap 'shutdown INT; exit 130' INT
trap 'shutdown TERM; exit 143' TERM
trap 'shutdown EXIT' EXIT

# Prometheus multiprocess files (<kind>_<pid>.db): those of processes no longer running are dropped at
# start, so the counters of a previous run do not add up forever (a live process's files stay).
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/metrics}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
for f in "$PROMETHEUS_MULTIPROC_DIR"/*_*.db; do
  [[ -e $f ]] || continue
  pid=${f##*_}
  kill -0 "${pid%.db}" 2>/dev/null || rm -f "$f"
done

# No lifespan protocol in Django; open long-polls get 3 s to end once a stop begins.
# Django logs each request (with its id and duration): uvicorn's access log would repeat it.
.venv/bin/uvicorn portal.asgi:application --host 127.0.0.1 --port "${PORT}" --lifespan off \
  --timeout-graceful-shutdown 3 --no-access-log &
pids+=($!)
$PY manage.py qcluster &
pids+=($!)
Q_CLUSTER_NAME=asr $PY manage.py qcluster &
pids+=($!)
# Niced: on one machine the web tier and the ASR worker start first; streams still get the CPU the others leave.
nice -n 10 $PY manage.py stream &
pids+=($!)
echo "Tingxie on http://127.0.0.1:${PORT}/ (ASR_MODEL=${ASR_MODEL:-iic/SenseVoiceSmall}), live streams on" \
  "ws://127.0.0.1:${STREAM_PORT:-10095}; Ctrl-C stops."
wait -n
