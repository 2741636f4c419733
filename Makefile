# A thin front end to CMake, so that `make`, `make run`, `make check` and
# `make install` do what people expect. The real build is CMakeLists.txt.
#   make                      build build/duplex and build/libduplex.{a,so}
#   make run                  build, then serve the default service table
#   make check                install test packages if missing, build, test
#   make check SANITIZE=address,undefined   the same under sanitizers
#   make install PREFIX=/usr DESTDIR=/tmp/pkg
#   make lint                 clang-format, clang-tidy and cppcheck
#   make bench                the side-by-side benchmark (bench/README.md)
PREFIX ?= /usr/local
SANITIZE ?=
BUILD ?= $(if $(SANITIZE),build-san,build)
CMAKE_FLAGS = -G Ninja -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DDX_SANITIZE=$(SANITIZE)
SOURCES = $(shell find src include tools tests/unit tests/fuzz tests/e2e tests/*.h -name '*.[ch]')
TIDY_SOURCES = $(shell find src tools tests/unit -name '*.c')

all: build

build: deps-build
	@test -f $(BUILD)/build.ninja || cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD)

run: build
	./$(BUILD)/duplex serve

check: deps-test build
	@SANITIZE=$(SANITIZE) sh scripts/check.sh $(BUILD)

install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

lint: deps-lint build
	@clang-format --dry-run -Werror $(SOURCES)
	@clang-tidy --quiet -p $(BUILD) $(TIDY_SOURCES) 2>/dev/null | \
		(! grep -E 'warning:|error:')
	@cppcheck --quiet --error-exitcode=1 --inline-suppr \
		--enable=warning,performance,portability \
		--suppress=missingIncludeSystem -I include -I src -I $(BUILD) \
		--std=c11 src tools
	@echo "lint: clean"

fuzz-build: deps-test
	@test -f build-fuzz/build.ninja || CC=clang cmake -S . -B build-fuzz \
		-G Ninja -DDX_FUZZ=ON -DDX_SANITIZE=address,undefined >/dev/null
	@cmake --build build-fuzz

bench: deps-bench build
	bench/run --duplex $(BUILD)/duplex

deps-bench:
	@sh scripts/deps.sh build bench
deps-build:
	@sh scripts/deps.sh build
deps-test:
	@sh scripts/deps.sh build test
deps-lint:
	@sh scripts/deps.sh lint

clean:
	rm -rf build build-san build-fuzz

.PHONY: all build run check install lint bench fuzz-build deps-build deps-test deps-lint deps-bench clean
