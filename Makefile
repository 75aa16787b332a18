# RedCloud build entry points. Every target installs what it needs first
# (scripts/setup.sh; apt-get as root) so a fresh Debian 12 machine needs
# nothing else.
BUILD   ?= build
JOBS    ?= 2
WERROR  ?= OFF
DATA    ?= ./redcloud-data
CMAKE_FLAGS ?=
# ccache hits across checkouts in different folders (CI clones afresh).
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

# (asan-configure is internal)
.PHONY: asan-configure setup configure build run test unit sim soak e2e cluster cluster-cleanup deploy-test asan fuzz bench bench-chunks bench-growth bench-replication bench-slow-clients format check-format clean

setup:
	@bash scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRC_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null

build: configure
	@ninja -C $(BUILD) -j$(JOBS) redcloud unit_tests sim_tests
	@echo "built $(BUILD)/redcloud"

run: build
	$(BUILD)/redcloud server --data-dir $(DATA)

# Every test: unit, simulation, end-to-end and cluster on the normal build;
# unit and end-to-end again under ASan + UBSan; each fuzz target briefly.
TEST_FUZZ_SECONDS ?= 15
test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 1800
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

sim: build
	cd $(BUILD) && ctest --output-on-failure -L sim

# Many seeds of the replication simulation: make soak SEEDS=500 [FIRST=1]
SEEDS ?= 200
FIRST ?= 1
soak: build
	SIM_SEEDS=$(SEEDS) SIM_FIRST_SEED=$(FIRST) $(BUILD)/sim_tests --gtest_filter='ReplicationSim.Seeds'

e2e: build
	cd $(BUILD) && ctest --output-on-failure -L e2e

cluster: build
	cd $(BUILD) && ctest --output-on-failure -L cluster

cluster-cleanup:
	bash scripts/cluster-cleanup.sh --force

# AddressSanitizer + UBSan (clang-14), with libFuzzer coverage so the same
# build also makes the fuzz targets: `make asan` runs the unit and end-to-end
# tests on it; `make fuzz` runs every fuzz target for FUZZ_SECONDS each
# (corpora in tests/fuzz/corpus; findings land in $(ASAN_BUILD)/fuzz-findings).
ASAN_BUILD   ?= build-asan
ASAN_OPTIONS_RC ?= detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0
FUZZ_SECONDS ?= 60
asan-configure: setup
	@CC=clang-14 CXX=clang++-14 cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DRC_SANITIZE=ON -DRC_FUZZ=ON >/dev/null

asan: asan-configure
	@ninja -C $(ASAN_BUILD) -j$(JOBS) redcloud unit_tests
	cd $(ASAN_BUILD) && ASAN_OPTIONS=$(ASAN_OPTIONS_RC) UBSAN_OPTIONS=print_stacktrace=1 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp ctest --output-on-failure -L "unit|e2e"

fuzz: asan-configure
	@ninja -C $(ASAN_BUILD) -j$(JOBS) fuzz_targets
	@bash scripts/fuzz.sh $(ASAN_BUILD) $(FUZZ_SECONDS)

# The container deployment for real (root): the image built with podman,
# compose.yaml up with podman-compose, an upload and a download through two
# controllers, /cluster on each, then torn down. Not part of `make test`
# (the image build alone takes about 20 minutes on 2 cores).
deploy-test:
	bash scripts/deploy-test.sh

# Single-node figures, then chunk placement (bench/chunks.py), then replication
# (bench/replication.py); all write docs/PERFORMANCE.md. The replication
# cluster figures need root (netns).
bench: build
	@ninja -C $(BUILD) -j$(JOBS) replication_bench rc_loadgen metadata_populate
	@bash bench/run.sh $(BUILD)/redcloud

# Only the "## Chunks" section of docs/PERFORMANCE.md: 1 GiB uploads to 1 and
# 3 chunkservers and the fill of a 4th, real daemons on 127.0.0.1, ratios to
# dd in the same run; raw figures in $(BUILD)/chunks-figures.json.
bench-chunks: configure
	@ninja -C $(BUILD) -j$(JOBS) redcloud
	@/usr/bin/python3 bench/chunks.py --bin $(BUILD)/redcloud --out docs/PERFORMANCE.md \
		--json $(BUILD)/chunks-figures.json

# Only the "## Replication" section of docs/PERFORMANCE.md (real daemons in
# network namespaces as root, and the build/replication_bench simulation).
bench-replication: build
	@ninja -C $(BUILD) -j$(JOBS) replication_bench rc_loadgen
	@bash bench/run.sh --replication-only $(BUILD)/redcloud

# Only the "## Growth" section of docs/PERFORMANCE.md: list p99, a 4 KiB
# upload's latency and RSS with 10^4, 10^5 and 10^6 files in the metadata
# store (filled by build/metadata_populate through the store's write path).
bench-growth: configure
	@ninja -C $(BUILD) -j$(JOBS) redcloud rc_loadgen metadata_populate
	@/usr/bin/python3 bench/growth.py --bin $(BUILD)/redcloud --out docs/PERFORMANCE.md \
		--json $(BUILD)/growth-figures.json

# Only the "## Slow clients" section of docs/PERFORMANCE.md: /health latency
# and upload MB/s with and without 200 slow-header + 5,000 idle connections.
bench-slow-clients: configure
	@ninja -C $(BUILD) -j$(JOBS) redcloud
	@/usr/bin/python3 bench/slow_clients.py --bin $(BUILD)/redcloud --out docs/PERFORMANCE.md

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h' '*.cpp')

check-format:
	@clang-format --dry-run -Werror $$(git ls-files '*.cc' '*.h' '*.cpp')

clean:
	rm -rf $(BUILD)
