# The README's two commands are `make setup` and `make test`; .ci/run calls
# the same targets, so what users run and what CI runs cannot drift.

GO ?= go
# One package at a time: several tests measure recovery and latency on real
# RTSP streams, and CI has two cores.
TEST_FLAGS ?= -count=1 -p 1 -timeout 40m
# Where tests write their artefacts (the console's browser-test screenshots).
ARTIFACTS ?= $(CURDIR)/test-artifacts
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

# MARCH is the x86-64 level dlib's C++ code is compiled for. The default,
# x86-64-v2 (SSE4.2, POPCNT), is what internal/dlib's #cgo lines say, so
# plain `go build` and `go test` give the same portable code; it runs on
# the fanless Celeron/Atom edge boxes that lack AVX (docs/deploy.md).
# `make build MARCH=native` (or x86-64-v3, ...) builds with the tag
# facewatch_march, which drops the default, and passes -march in
# CGO_CXXFLAGS; the binary refuses at start, in one line, a CPU that lacks
# what it was built for. GOAMD64 follows for the Go code at v3 and above
# (Go's own default, v1, otherwise: Go's runtime checks its level itself).
MARCH ?= x86-64-v2
ifeq ($(MARCH),x86-64-v2)
BUILD_ENV :=
BUILD_TAGS :=
else
BUILD_ENV := CGO_CXXFLAGS="-O2 -g -march=$(MARCH)" GOAMD64=$(if $(filter x86-64-v3 x86-64-v4,$(MARCH)),v3,v1)
BUILD_TAGS := -tags facewatch_march
endif

# DLIB_PREFIX links a dlib built and installed by hand instead of Debian's
# libdlib-dev: a CUDA build for GPU hosts (docs/recognition.md, "GPU
# hosts"). Its pkg-config file is found first, so the cgo packages compile
# against its config.h (DLIB_USE_CUDA) and link its libdlib, and the binary
# keeps its library directory as rpath. Unset, nothing changes.
DLIB_PREFIX ?=
ifneq ($(DLIB_PREFIX),)
BUILD_ENV += PKG_CONFIG_PATH="$(DLIB_PREFIX)/lib/pkgconfig$${PKG_CONFIG_PATH:+:$$PKG_CONFIG_PATH}" CGO_LDFLAGS="-g -O2 -Wl,-rpath,$(DLIB_PREFIX)/lib"
endif

# bin/facewatch links only the OpenCV modules facewatch calls (17 fewer
# shared libraries at start, Qt and protobuf among them; 11-14 % less
# start-up CPU: docs/recognition.md, "Start-up"). gocv's customenv tag
# drops its `pkg-config opencv4` (every module); the headers are found
# through CPLUS_INCLUDE_PATH, which, unlike CGO_CPPFLAGS, does not change
# the build cache's keys of the other cgo packages (dlib is not compiled
# twice); --gc-sections drops gocv's wrappers of the modules not linked
# (highgui, dnn, objdetect, photo, video), and with them their
# references. calib3d stays: gocv's imgproc.cpp calls findHomography.
# `go build` and `go test` without the tag link every module, as before.
comma := ,
OPENCV_LIBS := -lopencv_videoio -lopencv_imgcodecs -lopencv_calib3d -lopencv_features2d -lopencv_imgproc -lopencv_core
OPENCV_INCLUDE = $(patsubst -I%,%,$(filter -I%,$(shell pkg-config --cflags-only-I opencv4)))
OPENCV_ENV = CPLUS_INCLUDE_PATH="$(subst $(eval) ,:,$(strip $(OPENCV_INCLUDE)))$${CPLUS_INCLUDE_PATH:+:$$CPLUS_INCLUDE_PATH}"
OPENCV_TAGS := -tags customenv$(if $(BUILD_TAGS),$(comma)facewatch_march)
OPENCV_LDFLAGS := -ldflags='-extldflags "-Wl,--gc-sections $(OPENCV_LIBS)"'


# Every fuzz target, as package:Function; `make fuzz` runs each for
# FUZZTIME (16 targets at 4s, about 1.5 minutes on two cores once built), and `make
# test` runs it after the tests. internal/archtest fails when a Fuzz
# function of the repository is missing here. Inputs that fail are kept
# under the package's testdata/fuzz and replayed by every later `go test`.
FUZZTIME ?= 4s
FUZZ_TARGETS := \
	alert:FuzzBearer \
	alert:FuzzCaseRef \
	alert:FuzzLastEventID \
	alert:FuzzReviewBody \
	alert:FuzzParseFilter \
	detect:FuzzDecode \
	internal/config:FuzzParse \
	internal/config:FuzzRedact \
	internal/pipeline:FuzzFrameMessage \
	internal/rtsptest:FuzzParseClip \
	internal/wire:FuzzDecode \
	internal/wire:FuzzDecodeFrame \
	internal/wire:FuzzDecodeTrack \
	match:FuzzParseEvent \
	models:FuzzExtractTar \
	models:FuzzExtractZip

.PHONY: setup build test lint fuzz demo clean

setup:
	bash scripts/setup.sh

build:
	$(BUILD_ENV) $(OPENCV_ENV) $(GO) build $(OPENCV_TAGS) $(OPENCV_LDFLAGS) -o bin/facewatch ./cmd/facewatch

# Every package: `./...` skips directories named testdata, and
# internal/testdata is a real package (the demo imports it).
PKGS := ./... ./internal/testdata

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt differences in:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@test -x "$(STATICCHECK)" || { echo "staticcheck not found (looked for $(STATICCHECK)): run make setup"; exit 1; }
	$(STATICCHECK) $(PKGS)

test: lint
	FACEWATCH_ARTIFACTS="$(ARTIFACTS)" $(BUILD_ENV) $(GO) test $(BUILD_TAGS) -race $(TEST_FLAGS) $$($(GO) list $(PKGS) | grep -v -E '$(NO_RACE)')
	FACEWATCH_ARTIFACTS="$(ARTIFACTS)" $(BUILD_ENV) $(GO) test $(BUILD_TAGS) $(TEST_FLAGS) $$($(GO) list $(PKGS) | grep -E '$(NO_RACE)')
	$(MAKE) fuzz

# Go's fuzzing coordinator sometimes ends a short run with a bare "context
# deadline exceeded" when a worker is busy in a slow input at the moment
# FUZZTIME runs out (no failing input is reported or saved); such a run is
# tried once more. A real failure names its input and fails at once.
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz ./$$pkg $$fn ($(FUZZTIME))"; \
		for try in 1 2 3; do \
			if out=$$($(BUILD_ENV) $(GO) test $(BUILD_TAGS) -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) ./$$pkg 2>&1); then break; fi; \
			if [ $$try != 3 ] && echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -q 'Failing input'; then \
				echo "fuzz ./$$pkg $$fn: the fuzzing engine timed out without a failing input; once more"; continue; fi; \
			echo "$$out"; exit 1; \
		done; \
	done

# The demo: a synthetic RTSP camera, one person enrolled, `facewatch run`.
demo:
	bash scripts/demo.sh

clean:
	rm -rf bin
