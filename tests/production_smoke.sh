#!/usr/bin/env bash
# The README's "Production shape", run as written on a fresh database, then checked over HTTP.
#
#   tests/production_smoke.sh        (from anywhere; CI runs it from .ci/run)
#
# What it runs (README, "Production shape"): `manage.py migrate`, `manage.py collectstatic`,
# `gunicorn pricetracker.wsgi --bind ... --workers 4` and `manage.py qcluster`, with the README's
# production variables (DEBUG=0, SECRET_KEY, ALLOWED_HOSTS=tracker.example.com, DATABASE_URL).
# Only what a real host would fill in differs: a fresh SQLite file in a temporary DATA_DIR for
# DATABASE_URL (the README's single-host shape: ORM broker, database cache), a random SECRET_KEY,
# a free loopback port instead of 0.0.0.0:8000, TRUST_X_FORWARDED_PROTO=1 standing for the
# TLS-terminating proxy (DEBUG=0 redirects plain HTTP to HTTPS), and console email, so no mail
# ever leaves the machine.
#
# Then: /api/health/ must answer 200 (it is 503 until the cluster's heartbeat is in the shared
# cache), a user registers (201) and gets a token (200). Every process started here is stopped
# (SIGTERM to each main process, as the README says for qcluster; SIGKILL to its group after a
# grace period) and the temporary directory is removed, whatever happens. Bounded: at most
# HEALTH_TIMEOUT seconds of waiting for health, STOP_GRACE seconds per process to stop.
set -euo pipefail
cd "$(dirname "$0")/.."

HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-120}
STOP_GRACE=20
HOST_HEADER="Host: tracker.example.com"
PROXY_HEADER="X-Forwarded-Proto: https"

tmp=$(mktemp -d)
pids=()

stop() {
  # Each child runs in its own session (setsid), so its pid is also its process group.
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    # Done when nothing of the group is left (uv, the server or cluster, their workers).
    for _ in $(seq 1 "$STOP_GRACE"); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 -- "-$pid" 2>/dev/null; then
      echo "smoke: process group $pid did not stop within ${STOP_GRACE}s; killing it" >&2
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}

cleanup() {
  local status=$?
  stop
  if [ "$status" -ne 0 ]; then
    for log in "$tmp"/*.log; do
      [ -f "$log" ] || continue
      printf '\n--- %s (last 40 lines)\n' "$(basename "$log")" >&2
      tail -n 40 "$log" >&2
    done
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(uv run --quiet python -c \
  'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

# The variables the README sets on these commands, filled in; nothing inherited may point the
# processes at another database, cache or broker.
unset CACHE_URL Q_REDIS_URL PROMETHEUS_MULTIPROC_DIR SITE_URL
export DEBUG=0
export SECRET_KEY
SECRET_KEY=$(uv run --quiet python -c 'import secrets; print(secrets.token_urlsafe(64))')
export ALLOWED_HOSTS=tracker.example.com
export DATA_DIR="$tmp/data"
export DATABASE_URL="sqlite:///$tmp/data/db.sqlite3"
export TRUST_X_FORWARDED_PROTO=1
export EMAIL_URL=consolemail://

echo "smoke: fresh database in $DATA_DIR, port $port"
uv run python manage.py migrate        # on every upgrade; re-registers schedules idempotently
uv run python manage.py collectstatic --noinput >/dev/null  # once per release

setsid uv run gunicorn pricetracker.wsgi --bind "127.0.0.1:$port" --workers 4 \
  >"$tmp/gunicorn.log" 2>&1 </dev/null &
pids+=("$!")
setsid uv run python manage.py qcluster >"$tmp/qcluster.log" 2>&1 </dev/null &
pids+=("$!")

echo "smoke: (${SECONDS}s) waiting up to ${HEALTH_TIMEOUT}s for $base/api/health/ to answer 200"
deadline=$(( $(date +%s) + HEALTH_TIMEOUT ))
health=000
while [ "$(date +%s)" -lt "$deadline" ]; do
  health=$(curl -s -o "$tmp/health.json" -w '%{http_code}' -H "$HOST_HEADER" "$base/api/health/" || true)
  [ "$health" = 200 ] && break
  sleep 2
done
if [ "$health" != 200 ]; then
  echo "smoke: FAILED: /api/health/ answered $health" >&2
  cat "$tmp/health.json" >&2 2>/dev/null || true
  exit 1
fi
echo "smoke: health 200: $(head -c 200 "$tmp/health.json")..."

post() {  # post PATH JSON -> prints the status code; the body goes to $tmp/body.json
  curl -s -o "$tmp/body.json" -w '%{http_code}' -X POST -H "$HOST_HEADER" -H "$PROXY_HEADER" \
    -H 'Content-Type: application/json' -d "$2" "$base$1"
}
credentials='{"email": "alice@example.com", "password": "a long passphrase 42"}'

status=$(post /api/auth/register/ "$credentials")
if [ "$status" != 201 ]; then
  echo "smoke: FAILED: register answered $status: $(cat "$tmp/body.json")" >&2
  exit 1
fi
status=$(post /api/auth/token/ "$credentials")
if [ "$status" != 200 ] || ! grep -q '"access"' "$tmp/body.json"; then
  echo "smoke: FAILED: token answered $status: $(cat "$tmp/body.json")" >&2
  exit 1
fi
echo "smoke: register 201, token 200"

echo "smoke: stopping (${SECONDS}s)"
stop
echo "smoke: OK (${SECONDS}s)"
