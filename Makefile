# bdlcore — the entry points named in the README.
#
#   make demo   install what is missing, build, run the main job (`bdl demo`)
#   make test   install what is missing, build, run every test: Swift, C (also under valgrind),
#               the Swift-package quickstart, Python
#   make bench  benchmarks against the anchors, measured in the same run
#   make build  the release library libbdlcore.so and the bdl tool, Swift runtime linked statically
#
# Runs as root on a fresh Debian/Ubuntu machine (or with sudo available).

PYTHON ?= python3
SWIFT ?= swift
CC ?= cc

APT_PACKAGES := liblapacke-dev libopenblas-dev python3-dev pkg-config valgrind
PIP_PACKAGES := numpy pytest
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

RELEASE_DIR := $(CURDIR)/.build/release
LIBRARY := $(RELEASE_DIR)/libbdlcore.so
C_BUILD := bindings/c/build
C_TESTS := test_kron test_errors test_blas test_threads test_model test_curvature test_laplace test_influence test_marglik test_pruning test_model_selection
C_EXAMPLES := kron_quickstart laplace_quickstart spam_quickstart
CFLAGS_TEST := -std=c11 -Wall -Wextra -Werror -O1 -g -Iinclude
LDFLAGS_TEST := -L$(RELEASE_DIR) -lbdlcore -Wl,-rpath,$(RELEASE_DIR) -lm -pthread
# valgrind 3.19 cannot emulate AVX-512: on such CPUs the valgrind run asks OpenBLAS for AVX2 kernels.
VALGRIND_ENV := OPENBLAS_NUM_THREADS=1 $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo OPENBLAS_CORETYPE=Haswell)
VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite

.PHONY: all setup build demo test test-swift test-c test-swift-package test-python bench clean

all: build

setup:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@$(PYTHON) -c "import numpy, pytest" 2>/dev/null || $(PYTHON) -m pip install -q $(PIP_PACKAGES)

build: setup
	$(SWIFT) build -c release -Xswiftc -static-stdlib

demo: build
	$(RELEASE_DIR)/bdl demo

test: build test-swift test-c test-swift-package test-python

test-swift: setup
	$(SWIFT) test

# C tests and examples compile against include/ and link the built library, then run natively and
# under valgrind memcheck. valgrind cannot read the DWARF of the Swift-built library, so it runs
# on a copy without debug sections (symbols stay).
test-c: build
	@mkdir -p $(C_BUILD)/valgrind
	$(CC) $(CFLAGS_TEST) $$(pkg-config --cflags openblas lapacke) bindings/c/tests/test_prototypes.c -o $(C_BUILD)/test_prototypes
	$(C_BUILD)/test_prototypes
	@for t in $(C_TESTS); do \
	  $(CC) $(CFLAGS_TEST) bindings/c/tests/$$t.c -o $(C_BUILD)/$$t $(LDFLAGS_TEST) || exit 1; done
	@for e in $(C_EXAMPLES); do \
	  $(CC) $(CFLAGS_TEST) bindings/c/examples/$$e.c -o $(C_BUILD)/$$e $(LDFLAGS_TEST) || exit 1; done
	@for t in $(C_TESTS); do $(C_BUILD)/$$t || exit 1; done
	@for e in $(C_EXAMPLES); do echo "example $$e:"; $(C_BUILD)/$$e || exit 1; done
	strip --strip-debug -o $(C_BUILD)/valgrind/libbdlcore.so $(LIBRARY)
	@for t in $(C_TESTS) $(C_EXAMPLES); do \
	  echo "valgrind $$t"; \
	  LD_LIBRARY_PATH=$(CURDIR)/$(C_BUILD)/valgrind $(VALGRIND_ENV) $(VALGRIND) $(C_BUILD)/$$t > $(C_BUILD)/$$t.valgrind.out || \
	    { cat $(C_BUILD)/$$t.valgrind.out; echo "valgrind: $$t failed"; exit 1; }; \
	done

# The Swift quickstart is its own package that depends on this one by path, as a user's would.
# Built from scratch each time: SwiftPM's cache of a path dependency can miss newly added files.
test-swift-package: setup
	rm -rf bindings/swift/quickstart/.build
	$(SWIFT) run --package-path bindings/swift/quickstart

test-python: build
	PYTHONPATH=$(CURDIR)/bindings/python BDLCORE_LIBRARY=$(LIBRARY) $(PYTHON) -m pytest -q bindings/python/tests

# Benchmarks print timings and ratios against the anchors measured in the same run; never part of `make test`.
# BENCH_PYTHON: a Python with torch for the engine comparison (default: the fixtures virtualenv if
# present, else $(PYTHON), which then reports that torch is missing).
BENCH_PYTHON ?= $(shell [ -x .venv-fixtures/bin/python ] && echo .venv-fixtures/bin/python || echo $(PYTHON))
bench: build
	PYTHONPATH=$(CURDIR)/bindings/python BDLCORE_LIBRARY=$(LIBRARY) $(PYTHON) bench/bench_kron.py
	PYTHONPATH=$(CURDIR)/bindings/python BDLCORE_LIBRARY=$(LIBRARY) $(BENCH_PYTHON) bench/bench_engine.py
	PYTHONPATH=$(CURDIR)/bindings/python BDLCORE_LIBRARY=$(LIBRARY) $(BENCH_PYTHON) bench/bench_kfac.py
	PYTHONPATH=$(CURDIR)/bindings/python BDLCORE_LIBRARY=$(LIBRARY) $(BENCH_PYTHON) bench/bench_laplace.py
	PYTHONPATH=$(CURDIR)/bindings/python BDLCORE_LIBRARY=$(LIBRARY) $(BENCH_PYTHON) bench/bench_influence.py
	PYTHONPATH=$(CURDIR)/bindings/python BDLCORE_LIBRARY=$(LIBRARY) $(BENCH_PYTHON) bench/bench_marglik.py
	PYTHONPATH=$(CURDIR)/bindings/python BDLCORE_LIBRARY=$(LIBRARY) $(PYTHON) bench/bench_marglik_reduce.py

clean:
	rm -rf .build $(C_BUILD) bindings/swift/quickstart/.build
