# One entry point for every chore. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
CARGO ?= cargo

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

.PHONY: venv
venv: ## Create the Python virtualenv with moto (once)
	@scripts/venv.sh $(VENV) localstack/requirements.txt

.PHONY: lint
lint: ## cargo fmt --check and clippy with -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: unit
unit: ## Unit and handler tests (no servers)
	$(CARGO) test --workspace --lib --bins

.PHONY: integration
integration: venv ## Integration suites against moto and a real Kafka-protocol broker
	$(CARGO) test -p integration-tests

.PHONY: test
test: venv lint ## Every suite: lint, unit, handler, integration and end-to-end
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

.PHONY: fuzz
fuzz: ## Fuzz decode + normalize for FUZZ_SECONDS (default 60); needs cargo-fuzz
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run normalize -- -max_total_time=$${FUZZ_SECONDS:-60}

.PHONY: clean
clean: ## Remove build output and the virtualenv
	$(CARGO) clean
	rm -rf $(VENV)
