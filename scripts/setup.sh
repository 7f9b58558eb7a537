#!/usr/bin/env bash
# facewatch set-up: installs the Debian packages facewatch builds and tests
# with and the staticcheck linter, fetches and verifies the dlib models, and builds bin/facewatch.
# Safe to run twice; the second run installs and downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build and run dependencies, and the packages whose files tests use
# (libdlib19.1: dlib's example faces; opencv-doc: vtest.avi; chromium:
# the headless browser the console's browser tests drive).
PKGS=(
  libopencv-dev libdlib-dev libdlib19.1 libopenblas-dev libatlas-base-dev
  libjpeg62-turbo-dev pkg-config ffmpeg opencv-doc
  gcc g++ make ca-certificates sqlite3 bzip2 chromium
)
# Models come through pip; use the python3 already on PATH if it has pip.
python3 -m pip --version >/dev/null 2>&1 || PKGS+=(python3 python3-pip)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages present"
fi

# staticcheck, which `make lint` runs: from the Go module proxy into Go's bin
# directory (GOBIN, else GOPATH/bin), once per version.
STATICCHECK_VERSION=v0.8.2
gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
if "$gobin/staticcheck" -version 2>/dev/null | grep -qF "(${STATICCHECK_VERSION#v})"; then
  echo "setup: staticcheck $STATICCHECK_VERSION present"
else
  echo "setup: installing staticcheck $STATICCHECK_VERSION into $gobin"
  go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi

# nats-server, which the cluster test runs as three real processes and the
# compose file runs as the cluster: built from its Go module at the version
# go.mod pins (the same code the embedded server runs), never a downloaded
# binary.
NATS_VERSION="$(go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)"
if "$gobin/nats-server" --version 2>/dev/null | grep -qF "v${NATS_VERSION#v}"; then
  echo "setup: nats-server $NATS_VERSION present"
else
  echo "setup: installing nats-server $NATS_VERSION into $gobin"
  go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
fi

# MARCH (default x86-64-v2, see docs/deploy.md) is the CPU level of the C++
# code; make build MARCH=native opts into this machine's.
echo "setup: building bin/facewatch"
make build MARCH="${MARCH:-x86-64-v2}"

echo "setup: fetching and verifying models"
bin/facewatch models fetch

bin/facewatch version
if [ -x scripts/demo.sh ] && [ "${FACEWATCH_SKIP_DEMO:-}" != 1 ]; then
  echo "setup: running the demo (from a terminal it runs until Ctrl-C; FACEWATCH_SKIP_DEMO=1 skips it)"
  scripts/demo.sh
fi
