#!/usr/bin/env bash
# facewatch demo: builds facewatch, fetches the models, enrols one person from
# a photo, serves a synthetic RTSP camera (real face photos crossing a real
# street frame: the enrolled person twice, four strangers) and runs
# `facewatch run` against it. Each alert is printed as it arrives, with the
# URL of the API. It ends by itself after the clip (or on Ctrl-C) and leaves
# no process behind.
#
#   scripts/demo.sh            # under a minute once built
#   DEMO_SECONDS=60 scripts/demo.sh   # cap on the run (default 60s)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${DEMO_SECONDS:-60}
bin=bin/facewatch

echo "demo: building $bin"
mkdir -p bin
go build -o "$bin" ./cmd/facewatch
echo "demo: fetching and verifying models"
"$bin" models fetch >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/facewatch-demo.XXXXXX")
pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

# The synthetic camera: 640x360 at 25 fps, sampled at 5 fps by facewatch.
"$bin" dev synth --listen 127.0.0.1:0 --path demo --size 640x360 --fps 25 >"$work/synth.out" 2>"$work/synth.log" &
pids+=($!)
for _ in $(seq 1 300); do
  grep -q '^enrol ' "$work/synth.out" 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$work/synth.log" >&2; exit 1; }
  sleep 0.1
done
url=$(awk '/^rtsp /{print $2}' "$work/synth.out")
person=$(awk '/^enrol /{print $2}' "$work/synth.out")
photo=$(awk '/^enrol /{print $4}' "$work/synth.out")
[ -n "$url" ] && [ -n "$photo" ] || { echo "demo: the synthetic camera did not start" >&2; cat "$work/synth.log" >&2; exit 1; }
echo "demo: synthetic camera at $url; the clip's truth:"
grep '^truth ' "$work/synth.out" | sed 's/^truth /  /'

cat >"$work/facewatch.yaml" <<YAML
data_dir: $work/data
log_level: warn
cameras:
  - id: demo-cam
    name: "Synthetic street camera"
    url: $url
    max_fps: 5
alert:
  listen: 127.0.0.1:0
YAML

echo "demo: enrolling $person from $(basename "$photo")"
mkdir -p "$work/enrol/$person"
cp "$photo" "$work/enrol/$person/"
"$bin" watchlist create --config "$work/facewatch.yaml" --kind missing --legal-basis "demo" --owner demo demo >/dev/null
"$bin" enroll --config "$work/facewatch.yaml" --list demo --by demo "$work/enrol" 2>/dev/null | tail -n 1
token=$("$bin" token create --config "$work/facewatch.yaml" --role operator --scope all --person demo --name demo 2>/dev/null)

echo "demo: running facewatch until the clip ends (at most ${seconds}s); expect two alerts for $person and none for the strangers"
echo "demo: API token (operator): $token  (while it runs: curl -H \"Authorization: Bearer TOKEN\" API-URL/api/v1/queue)"
"$bin" run --config "$work/facewatch.yaml" --for "${seconds}s" &
pids+=($!)
# The synthetic camera exits when its clip has been played; the last
# track ends a moment later.
while kill -0 "${pids[0]}" 2>/dev/null && kill -0 "${pids[1]}" 2>/dev/null; do
  sleep 0.5
done
sleep 4
kill -TERM "${pids[1]}" 2>/dev/null || true
wait "${pids[1]}" 2>/dev/null || true
echo "demo: done"
