#!/usr/bin/env bash
# Build, run, stop and test the serving image with docker or podman, whichever works here.
#
# Usage: scripts/docker.sh build|run|stop|test|engine|size
#   build   build the runtime image ($IMAGE, default drug-classifier:latest)
#   run     start it detached as $CONTAINER on 127.0.0.1:$PORT (default 8000);
#           ARTIFACTS=path mounts a local artifacts folder read-only instead of the baked model
#   stop    stop (SIGTERM) and remove $CONTAINER
#   test    build, start on a free loopback port, and check health, a known prediction,
#           the non-root user, that training libraries are absent, SIGTERM, and the size
#   engine  print the engine that would be used
#   size    print the image size and what it adds over the base image
#
# The engine is docker when `docker info` succeeds (a CLI alone is not enough), else podman;
# CONTAINER_ENGINE=docker|podman forces one. With podman, builds add `--pull=never
# --network host --format docker` (the base is a local stand-in here; the docker format keeps
# the HEALTHCHECK, which the OCI format drops); PODMAN_BUILD_FLAGS overrides that.
# On a machine without a Docker engine, first: source ../shared/tools/podman-env.sh
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-drug-classifier:latest}
CONTAINER=${CONTAINER:-drug-classifier}
PORT=${PORT:-8000}
BASE_IMAGE=${BASE_IMAGE:-python:3.12-slim}
# The issue's budget: what our layers may add on top of python:3.12-slim.
MAX_ADDED_MB=${MAX_ADDED_MB:-250}
# A known patient from data/drug200.csv (row "23,F,HIGH,HIGH,25.355,DrugY"): Na_to_K this high
# is always DrugY.
KNOWN_PATIENT='{"Age": 23, "Sex": "F", "BP": "HIGH", "Cholesterol": "HIGH", "Na_to_K": 25.355}'
KNOWN_DRUG=DrugY

log() { printf '\033[36m[docker]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[docker] FAIL:\033[0m %s\n' "$*" >&2; exit 1; }

detect_engine() {
  if [ -n "${CONTAINER_ENGINE:-}" ]; then
    echo "$CONTAINER_ENGINE"
  elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo docker
  elif command -v podman >/dev/null 2>&1; then
    echo podman
  else
    die "no container engine: need docker with a running engine, or podman" \
        "(on the project's machines: source ../shared/tools/podman-env.sh)"
  fi
}
ENGINE=$(detect_engine)

build_flags() {
  if [ "$ENGINE" = podman ]; then
    # shellcheck disable=SC2086 # word splitting intended
    echo ${PODMAN_BUILD_FLAGS:---pull=never --network host --format docker}
  fi
}

cmd_build() {
  local start=$SECONDS
  log "building $IMAGE with $ENGINE"
  # shellcheck disable=SC2046,SC2086 # word splitting of the flag lists intended
  "$ENGINE" build $(build_flags) ${BUILD_ARGS:-} --target runtime -t "$IMAGE" .
  log "built $IMAGE in $((SECONDS - start)) s"
}

cmd_run() {
  local mount=()
  if [ -n "${ARTIFACTS:-}" ]; then
    mount=(-v "$(realpath "$ARTIFACTS"):/app/artifacts:ro")
  fi
  quiet "$ENGINE" run -d --rm --name "$CONTAINER" -p "127.0.0.1:${PORT}:8000" "${mount[@]}" "$IMAGE"
  log "started $CONTAINER: http://127.0.0.1:${PORT} (stop with: make docker-stop)"
}

cmd_stop() {
  if "$ENGINE" container inspect "$CONTAINER" >/dev/null 2>&1; then
    quiet "$ENGINE" stop -t 10 "$CONTAINER"
    "$ENGINE" rm -f "$CONTAINER" >/dev/null 2>&1 || true
    log "stopped $CONTAINER"
  else
    log "$CONTAINER is not running"
  fi
}

image_bytes() { "$ENGINE" image inspect --format '{{.Size}}' "$1"; }
mb() { echo $(($1 / 1000 / 1000)); }

cmd_size() {
  local size base added
  size=$(image_bytes "$IMAGE")
  base=$(image_bytes "$BASE_IMAGE")
  added=$((size - base))
  log "image $IMAGE: $(mb "$size") MB; base $BASE_IMAGE: $(mb "$base") MB; added: $(mb "$added") MB"
  echo "$added"
}

# quiet CMD...: run an engine command, showing its stderr only if it fails (podman without
# systemd logs an error about healthcheck timers at every start and stop: noise here).
quiet() {
  local err rc=0
  err=$(mktemp)
  "$@" 2>"$err" >/dev/null || rc=$?
  [ "$rc" = 0 ] || cat "$err" >&2
  rm -f "$err"
  return "$rc"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http METHOD URL [BODY]: prints "STATUS BODY"; never fails on an HTTP error status.
http() {
  python3 - "$@" <<'PY'
import sys, urllib.error, urllib.request
method, url = sys.argv[1], sys.argv[2]
data = sys.argv[3].encode() if len(sys.argv) > 3 else None
req = urllib.request.Request(url, data=data, method=method,
                             headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=5) as resp:
        print(resp.status, resp.read().decode())
except urllib.error.HTTPError as exc:
    print(exc.code, exc.read().decode())
except OSError as exc:
    print(0, exc)
PY
}

cmd_test() {
  [ "${SKIP_BUILD:-0}" = 1 ] || cmd_build
  local name port url started status body
  name="drugclf-test-$$"
  port=$(free_port)
  url="http://127.0.0.1:${port}"
  # shellcheck disable=SC2064 # expand now: the trap must remove this very container
  trap "'$ENGINE' rm -f '$name' >/dev/null 2>&1 || true" EXIT

  # With a CPU quota, as a container usually runs: the server must start one worker per CPU of
  # the quota, not one per core of the host that the container still sees.
  log "starting $name on $url (--cpus 1)"
  quiet "$ENGINE" run -d --cpus 1 --name "$name" -p "127.0.0.1:${port}:8000" "$IMAGE"

  started=$SECONDS
  until [ "$(http GET "$url/ready" | cut -d' ' -f1)" = 200 ]; do
    if [ "$("$ENGINE" container inspect --format '{{.State.Running}}' "$name")" != true ]; then
      "$ENGINE" logs "$name" >&2 || true
      die "the container exited before it was ready"
    fi
    if ((SECONDS - started > 120)); then
      "$ENGINE" logs "$name" >&2 || true
      die "not ready after 120 s"
    fi
    sleep 1
  done
  log "ready after $((SECONDS - started)) s"

  local starting
  starting=$("$ENGINE" logs "$name" 2>&1 | grep -o 'with [0-9]* worker(s)' | head -1)
  [ "$starting" = "with 1 worker(s)" ] || die "under --cpus 1 the server started ${starting:-?}"
  log "under --cpus 1 it started $starting"

  # The image's own HEALTHCHECK (python + urllib, no curl). Docker runs it on its schedule;
  # podman runs it from systemd timers, which a container host may lack, so run it directly.
  if [ "$ENGINE" = podman ]; then
    "$ENGINE" healthcheck run "$name" || die "HEALTHCHECK failed"
  else
    started=$SECONDS
    until [ "$("$ENGINE" container inspect --format '{{.State.Health.Status}}' "$name")" = healthy ]; do
      ((SECONDS - started < 90)) || die "HEALTHCHECK not healthy after 90 s"
      sleep 2
    done
  fi
  log "HEALTHCHECK passes"

  read -r status body < <(http GET "$url/health")
  [ "$status" = 200 ] || die "GET /health answered $status: $body"

  read -r status body < <(http POST "$url/predict" "$KNOWN_PATIENT")
  [ "$status" = 200 ] || die "POST /predict answered $status: $body"
  python3 -c 'import json, sys; sys.exit(json.loads(sys.argv[1])["prediction"] != sys.argv[2])' \
      "$body" "$KNOWN_DRUG" || die "expected $KNOWN_DRUG for the known patient, got: $body"
  log "POST /predict $KNOWN_PATIENT -> $body"

  # The unprivileged user can write its data dir: the prediction log lands in /app/var.
  local var_files
  var_files=$("$ENGINE" exec "$name" sh -c 'ls -A /app/var' | tr '\n' ' ')
  log "/app/var holds: ${var_files:-nothing (prediction log off?)}"

  read -r status body < <(http POST "$url/predict" '{"Age": 23, "Sex": "X"}')
  [[ "$status" =~ ^4[0-9][0-9]$ ]] || die "an invalid request answered $status (want 4xx): $body"
  log "an invalid request answers $status"

  # The server (PID 1) and its workers run as the unprivileged user.
  local uids
  uids=$("$ENGINE" exec "$name" python -c '
import pathlib
for p in pathlib.Path("/proc").glob("[0-9]*"):
    try:
        cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        uid = next(l.split()[1] for l in (p / "status").read_text().splitlines() if l.startswith("Uid:"))
    except (OSError, StopIteration):
        continue
    if cmd and "/proc" not in cmd:
        print(p.name, uid, cmd)
')
  log "processes (pid uid cmd):"
  printf '    %s\n' "${uids//$'\n'/$'\n    '}" >&2
  echo "$uids" | awk '$1 == 1 && $2 != 0 {ok = 1} END {exit !ok}' || die "PID 1 is not running as non-root"
  if echo "$uids" | awk '$2 == 0 {bad = 1} END {exit !bad}'; then die "a process runs as root"; fi
  log "runs as non-root (uid $(echo "$uids" | awk '$1 == 1 {print $2}'))"

  # Serving only: the training stack and compilers must not be in the image.
  "$ENGINE" exec "$name" python -c '
import importlib.util, sys
found = [m for m in ("sklearn", "pandas", "imblearn", "skl2onnx", "matplotlib", "uv")
         if importlib.util.find_spec(m)]
sys.exit(f"importable in the image: {found}" if found else 0)' || die "training libraries in the image"
  if "$ENGINE" exec "$name" sh -c 'command -v gcc || command -v cc' >/dev/null; then
    die "a compiler is in the image"
  fi
  log "scikit-learn, pandas, imbalanced-learn, skl2onnx, matplotlib: not importable; no compiler"

  # SIGTERM reaches the server itself (exec-form CMD, no shell): it stops well before the
  # 10 s grace period, after which the engine would SIGKILL it (exit code 137).
  local t0 code
  t0=$(date +%s%N)
  quiet "$ENGINE" stop -t 10 "$name"
  local stop_ms=$((($(date +%s%N) - t0) / 1000000))
  code=$("$ENGINE" container inspect --format '{{.State.ExitCode}}' "$name")
  log "stopped by SIGTERM in ${stop_ms} ms, exit code $code"
  ((stop_ms < 8000)) && [ "$code" != 137 ] || die "did not stop cleanly on SIGTERM"

  local added
  added=$(cmd_size)
  (($(mb "$added") <= MAX_ADDED_MB)) || die "the image adds $(mb "$added") MB (> $MAX_ADDED_MB MB)"
  log "PASS"
}

case "${1:-}" in
  build) cmd_build ;;
  run) cmd_run ;;
  stop) cmd_stop ;;
  test) cmd_test ;;
  size) cmd_size >/dev/null ;;
  engine) echo "$ENGINE" ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
