#!/usr/bin/env bash
# facewatch demo: builds facewatch, fetches the models and runs
# `facewatch dev demo` (cmd/facewatch/cmd_demo.go): a synthetic RTSP camera
# (real face photos crossing a street scene: one person twice, four
# strangers), that person enrolled, a sign-in token for each role, and
# `facewatch run` watching the camera, with the console's URL printed.
#
# From a terminal (stdin and stdout both) the camera loops and everything
# keeps running until Ctrl-C, so that the console can be opened and used.
# Otherwise (CI, a piped or scripted make setup) the clip plays once and
# the demo ends by itself after the person's two alerts. Either way it
# leaves no process and no temporary file behind.
#
#   scripts/demo.sh                        # looping from a terminal, bounded otherwise
#   FACEWATCH_DEMO_LOOP=1 scripts/demo.sh  # loop whatever the terminal (0: the bounded run)
#   DEMO_SECONDS=60 scripts/demo.sh        # cap on the bounded run (default 120s)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=bin/facewatch
echo "demo: building $bin"
# make build, so that a MARCH given to make setup holds here too.
${MAKE:-make} --no-print-directory build >/dev/null
echo "demo: fetching and verifying models"
"$bin" models fetch >/dev/null

loop=${FACEWATCH_DEMO_LOOP:-}
if [ -z "$loop" ]; then
  loop=0
  if [ -t 0 ] && [ -t 1 ]; then loop=1; fi
fi
if [ "$loop" = 1 ]; then
  exec "$bin" dev demo --loop
fi
exec "$bin" dev demo --for "${DEMO_SECONDS:-120}s"
