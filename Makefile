# The README's two commands are `make setup` and `make test`; .ci/run calls
# the same targets, so what users run and what CI runs cannot drift.

GO ?= go
# One package at a time: several tests measure recovery and latency on real
# RTSP streams, and CI has two cores.
TEST_FLAGS ?= -count=1 -p 1 -timeout 40m
# Packages tested without the race detector: the end-to-end tests run the
# built binary in subprocesses (the race detector would only slow them), the
# dlib layer's memory assertions count resident memory that the race
# runtime's shadow memory inflates, and models and config have no
# concurrency (hashing 32 MB under -race costs a minute). Every other package
# runs under -race.
NO_RACE := /(models|internal/config|internal/dlib(/.*)?|internal/e2e|internal/testdata)$$

# staticcheck is installed by scripts/setup.sh into Go's bin directory,
# which need not be on PATH.
GOBIN_DIR = $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)
STATICCHECK ?= $(or $(shell command -v staticcheck 2>/dev/null),$(GOBIN_DIR)/staticcheck)

.PHONY: setup build test lint demo clean

setup:
	bash scripts/setup.sh

build:
	$(GO) build -o bin/facewatch ./cmd/facewatch

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt differences in:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@test -x "$(STATICCHECK)" || { echo "staticcheck not found (looked for $(STATICCHECK)): run make setup"; exit 1; }
	$(STATICCHECK) ./...

test: lint
	$(GO) test -race $(TEST_FLAGS) $$($(GO) list ./... | grep -v -E '$(NO_RACE)')
	$(GO) test $(TEST_FLAGS) $$($(GO) list ./... | grep -E '$(NO_RACE)')

# The demo: a synthetic RTSP camera, one person enrolled, `facewatch run`.
demo:
	bash scripts/demo.sh

clean:
	rm -rf bin
