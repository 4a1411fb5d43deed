# coffer — build, test, benchmark, demo. `make test` is the one test command.
GO       ?= go
BIN      := bin/coffer
PKGS     := ./cipher/... ./blobstore/... ./cache/... ./fs/... ./metrics/... ./cmd/...
SERVERS  := scripts/with-servers.sh
# Tests that need a server or FUSE fail rather than skip when these are set.
export COFFER_REQUIRE_SERVERS ?= 1

.PHONY: all build install lint test test-unit test-s3 test-integration soak bench demo tools deps clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/coffer

# Installs coffer, the mount(8)/umount(8) helpers that make fstab lines of
# type coffer work (/sbin/mount.coffer, /sbin/umount.fuse.coffer: coffer
# itself, by name) and the shell completions. PREFIX=/usr/local, SBINDIR=/sbin.
PREFIX  ?= /usr/local
SBINDIR ?= /sbin
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/coffer
	install -d $(DESTDIR)$(SBINDIR)
	ln -sf $(PREFIX)/bin/coffer $(DESTDIR)$(SBINDIR)/mount.coffer
	ln -sf $(PREFIX)/bin/coffer $(DESTDIR)$(SBINDIR)/umount.fuse.coffer
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	$(BIN) completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/coffer
	$(BIN) completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_coffer
	$(BIN) completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/coffer.fish

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# System packages the tests use (FUSE, rsync, restic); a no-op when present.
deps:
	@scripts/deps.sh

# Builds the S3 test servers and local-kms once into a cache outside the
# checkout.
tools:
	@scripts/tools.sh versitygw >/dev/null
	@scripts/tools.sh weed >/dev/null
	@scripts/tools.sh local-kms >/dev/null

test: lint test-unit test-s3 test-integration

# Unit tests, fuzz seed corpora included (go test runs them as tests);
# integration/bench's test checks its JSON report and chart (no server).
# deps: cipher's independent decoder needs Debian's python3 packages.
test-unit: deps
	$(GO) test -count=1 $(PKGS) ./integration/bench/

# The blobstore conformance suite against real S3 servers on loopback, and
# the fault proxy's own tests.
test-s3: tools
	$(SERVERS) versitygw seaweedfs -- $(GO) test -count=1 -tags s3 ./blobstore/... ./integration/faultproxy/
	COFFER_FS_VERSITYGW=1 $(SERVERS) versitygw -- $(GO) test -count=1 ./fs/

# Real FUSE mounts against the local backend and versitygw; the KMS
# root-key tests against local-kms.
test-integration: deps build tools
	$(SERVERS) versitygw seaweedfs kms -- $(GO) test -count=1 -timeout 20m ./integration/

# Long runs, not part of make test: the POSIX exerciser for 20000 ops per
# seed, with three more random seeds (printed) besides the fixed ones,
# local store and versitygw; then the crash tests (kill -9 during a burst,
# and again during recovery) at 2000 small and 3 large files of up to
# 96 MiB, 5 rounds each, and the mount-level fault tests at larger sizes.
soak: deps build tools
	COFFER_SOAK=1 $(SERVERS) versitygw -- $(GO) test -count=1 -timeout 2h -run TestExerciser -v ./integration/
	COFFER_SOAK=1 $(SERVERS) versitygw -- $(GO) test -count=1 -timeout 60m -run 'TestCrash|TestCloseJournals|TestFaultsAtMountLevel|TestFsyncRetryBudget|TestNoRequestWaitsForever|TestUnmountReports|TestTwoMountsConflict' -v ./integration/

# One table: coffer through a real mount vs the raw SDK and the peers on
# PATH (rclone crypt, s3fs), same versitygw, one run; cipher ratio included
# (integration/bench). Sizes: BENCH_SIZE=1GiB BENCH_FILES=2000
# BENCH_SMALL_SIZE=4KiB BENCH_RSS_SIZE=2GiB BENCH_PEERS=auto|none|rclone,s3fs;
# the SDK's ranged-GET read baseline: BENCH_RANGE_SIZE=32MiB BENCH_RANGE_CONC=8.
# The figures also go to BENCH_JSON (default bench/results.json) and are
# drawn to BENCH_SVG (default: the JSON's path with .svg); redraw the chart
# from a JSON with `go run ./integration/bench -chart-only`.
# Then the package benchmarks: cache and staging, S3 upload/download.
bench: build tools
	$(SERVERS) versitygw -- $(GO) run ./integration/bench -coffer $(BIN) -versitygw "$$(scripts/tools.sh versitygw)"
	$(GO) test -run '^$$' -bench . -benchtime 3x ./cache/...
	$(SERVERS) versitygw -- $(GO) test -run '^$$' -bench S3 -benchtime 1x -tags s3 ./blobstore/

demo: build
	@scripts/demo.sh

clean:
	rm -rf bin
