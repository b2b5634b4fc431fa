# Shoal: every entry point for people and CI. `make demo` and `make test` do all set-up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BPF_OUT := src/shoal/_bpf
BPF_SRC := $(shell find bpf -name '*.h' -o -name '*.c')
BPF_PROGS := $(BPF_OUT)/lb.bpf.o $(BPF_OUT)/decap.bpf.o $(BPF_OUT)/trivial.bpf.o $(BPF_OUT)/probe.bpf.o $(BPF_OUT)/trafgen.bpf.o $(BPF_OUT)/features.bpf.o
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
CLANG ?= clang
BPF_CFLAGS := -O2 -g -target bpf -mcpu=v3 -Wall -Werror -Wno-unused-function \
	-I bpf -I /usr/include/$(MULTIARCH)

.PHONY: all preflight deps venv build test test-fast test-scale test-prometheus test-console test-kernel test-kernel-quick lint demo bench bench-gate bench-aa clean tempest lab-slow
all: build

preflight:
	@scripts/preflight.sh $(MAKECMDGOALS)

deps: preflight
	@scripts/apt-deps.sh

$(VENV)/.stamp: pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: deps $(VENV)/.stamp

$(BPF_OUT)/%.bpf.o: $(BPF_SRC)
	@mkdir -p $(BPF_OUT)
	$(CLANG) $(BPF_CFLAGS) -c $(firstword $(wildcard bpf/*/$*.bpf.c)) -o $@

build: venv $(BPF_PROGS)
	@$(PY) -m shoal.dataplane.selfcheck

lint: venv
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy src

# Every test, privileged ones included (root, BPF, namespaces), after the linters.
test: build lint
	$(VENV)/bin/pytest -q

# One small `shoal bench scale` run end to end (PostgreSQL, controller, two XDP agents):
# about a minute, so not part of `make test`.
test-scale: build
	SHOAL_TEST_SCALE=1 $(VENV)/bin/pytest -q -m scale tests/bench/test_scale.py

# The whole lab with a real Prometheus scraping it, PromQL asserted (docs/metrics.md); heavy,
# so not in `make test`, which has the light exporter tests.
test-prometheus: build
	nice -n 10 $(VENV)/bin/pytest -q -m prometheus tests/lab/test_prometheus.py
# The lab's long suites (20 freeze/resume cycles...), at low priority: `make test` runs their
# fast subsets.
lab-slow: build
	SHOAL_LAB_SLOW=1 nice -n 10 $(VENV)/bin/pytest -q -m lab_slow tests/lab

# The BPF and namespace packet tests on another kernel: a qemu VM (software emulation) boots
# Debian's own kernel of series KERNEL with this checkout shared read-only (scripts/kernel-vm.sh).
# 6.1 is Debian 12's and the oldest Shoal supports. Tests that assert wall-clock speed are
# deselected: under emulation timings mean nothing, verdicts and verifier acceptance do.
# test-kernel-quick is CI's subset: every object through the verifier and the packet verdicts,
# and what a host kernel may refuse (seg6local on SRv6 backends, live-frames test runs), which
# `make test` skips there, saying why.
KERNEL ?= 6.1
KERNEL_TESTS ?= tests/bpf tests/netns
KERNEL_QUICK_TESTS := tests/bpf/test_kernel_compat.py tests/bpf/test_abi.py \
	tests/bpf/test_flowhash.py tests/bpf/test_decap.py tests/bpf/test_lb_packets.py \
	tests/bpf/test_passthrough.py tests/netns/test_srv6_e2e.py \
	tests/bpf/test_tables_batch.py \
	tests/bpf/test_chance.py::test_a_flow_whose_slot_changed_names_its_previous_owner \
	tests/bpf/test_pins.py::test_an_upgrade_moves_tables_into_their_class_and_serves_throughout \
	tests/bench/test_harness.py::test_generator_delivers_between_namespaces_within_its_bounds
test-kernel: build
	scripts/kernel-vm.sh $(KERNEL) -- $(VENV)/bin/pytest -q -p no:cacheprovider $(KERNEL_TESTS)

test-kernel-quick: build
	scripts/kernel-vm.sh $(KERNEL) -- env SHOAL_REQUIRE_KERNEL_FEATURES=1 $(VENV)/bin/pytest -q -p no:cacheprovider $(KERNEL_QUICK_TESTS)

# The web console in headless Chromium against the whole lab (docs/console.md); heavy, so not
# in `make test`, which runs tests/console (a live controller with the noop provider).
test-console: build
	nice -n 10 $(VENV)/bin/pytest -q -m console_lab tests/lab/test_console.py

# octavia-tempest-plugin's whole tests.api.v2 against a controller with the noop provider
# and a Keystone started for it (scripts/tempest.py); prints pass/fail/skip per module.
tempest: build
	@scripts/tempest-venv.sh
	$(PY) scripts/tempest.py

demo: build
	$(VENV)/bin/shoal demo $(DEMO_ARGS)

# Every benchmark, full sizes, with a report. bench-gate is what CI runs: the change against
# its base commit, both built and measured interleaved on this machine (docs/performance.md);
# bench-aa measures HEAD against itself and records this machine's spread.
bench: build
	$(VENV)/bin/shoal bench all --report bench-results/report

bench-gate: build
	$(VENV)/bin/shoal bench gate --quick

bench-aa: build
	$(VENV)/bin/shoal bench gate --quick --aa --record-spread

clean:
	rm -rf $(BPF_OUT) build *.egg-info
