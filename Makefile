# The README's two commands are `make setup` and `make test`; .ci/run calls
# the same targets, so what users run and what CI runs cannot drift.

GO ?= go
# -race on the packages whose concurrency matters; the cgo-heavy packages run
# without it to stay inside CI's time budget (their race tests opt in).
TEST_FLAGS ?= -count=1 -p 1 -timeout 40m

.PHONY: setup build test lint demo clean

setup:
	bash scripts/setup.sh

build:
	$(GO) build -o bin/facewatch ./cmd/facewatch

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt differences in:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: lint
	$(GO) test $(TEST_FLAGS) ./...

# The demo: a synthetic RTSP camera, one person enrolled, `facewatch run`.
demo:
	bash scripts/demo.sh

clean:
	rm -rf bin
