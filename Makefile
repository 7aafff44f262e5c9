# Thin wrapper over CMake presets and the project's scripts: no build logic here.
# `make help` lists the targets.

DATA    ?= data
LISTEN  ?= 127.0.0.1:8443
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX  ?= /usr/local
KITH     = build/dev/bin/kith
PLUGINS ?= identity,pipeline,leads

.PHONY: help deps build run test asan bench install format lint clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 10

deps: ## install missing Debian packages (root or sudo)
	@packaging/install-deps

build: deps ## configure and build (dev preset)
	@cmake --preset dev >/dev/null
	@cmake --build --preset dev -j $(JOBS)

run: build ## init $(DATA) if needed, print an admin key, serve HTTPS on $(LISTEN)
	@if [ ! -d "$(DATA)" ]; then \
		$(KITH) init --data "$(DATA)" --plugins "$(PLUGINS)"; \
	else \
		echo "kith: using existing data directory $(DATA); a new admin key for it:"; \
		key=$$($(KITH) key create --data "$(DATA)" --workspace default --role admin \
			--label "make run") && echo "KITH_API_KEY=$$key" || exit 2; \
	fi
	@echo "kith: serving https://$(LISTEN)/ (certificate: $(DATA)/tls/cert.pem)"
	@exec $(KITH) serve --data "$(DATA)" --listen "$(LISTEN)"

test: build ## build and run the whole test suite through ctest
	@ctest --preset dev -j $(JOBS)

asan: deps ## the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS)
	@ctest --preset asan -j $(JOBS)

bench: ## benchmarks (release build) beside same-run baselines: BENCH lines
	@packaging/install-deps --bench
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)
	@tests/bench/run build/release

install: deps ## release build, then install kith, the plugin SDK and scripts under $(PREFIX)
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)
	@cmake --install build/release --prefix "$(PREFIX)"

format: ## apply .clang-format to the C sources
	@git ls-files '*.c' '*.h' | xargs clang-format -i

lint: ## format check and clang-tidy over core/
	@git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror
	@cmake --preset dev >/dev/null
	@git ls-files 'core/*.c' | xargs clang-tidy -p build/dev --quiet

clean: ## remove the build trees
	@rm -rf build
