# One entry point for every chore. `make help` lists them.
#   make dev    the whole pipeline locally (embedded Kafka, moto, mapping, ingest, query API on :3000)
#   make test   every suite, as CI runs it
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
CARGO ?= cargo
# The Tansu tier runs when `tansu` is on PATH (scripts/tansu.sh install puts it there once per machine).
TANSU := $(shell command -v tansu 2>/dev/null)

.PHONY: help
help: ## List the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: venv
venv: ## Create the Python virtualenv with moto (once per change of localstack/requirements.txt)
	@scripts/venv.sh $(VENV) localstack/requirements.txt

.PHONY: dynalite
dynalite: ## Install dynalite (DynamoDB on LevelDB, for the restart in the fault suite and the dynalite tier; once)
	@scripts/dynalite.sh

.PHONY: browser
browser: ## Install what the console's browser test needs: Debian's chromium and playwright-core (once)
	@scripts/browser.sh

.PHONY: dev
dev: venv ## Run the whole pipeline locally until Ctrl-C (Kafka at 127.0.0.1:9092, API at :3000)
	$(CARGO) run --bin notifications -- dev

.PHONY: lint
lint: ## cargo fmt --check and clippy with -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: infra-lint
infra-lint: ## cfn-lint and sam validate --lint on the deployment template (offline)
	infra/lint.sh

.PHONY: unit
unit: ## Unit and handler tests only (no servers)
	$(CARGO) test --workspace --lib --bins

.PHONY: test
test: venv dynalite browser lint infra-lint ## Every suite: lint, unit, handler, integration, end-to-end, browser, template
	$(CARGO) test --workspace --all-targets
	@$(MAKE) --no-print-directory dynalite-tier
	@$(MAKE) --no-print-directory tansu-tier

.PHONY: dynalite-tier
dynalite-tier: dynalite ## The integration suites again with dynalite as the DynamoDB server (moto keeps S3)
	TEST_DYNAMODB=dynalite $(CARGO) test -p integration-tests --test ingest --test query --test bad_input --test observability --test formats

.PHONY: tansu-tier
tansu-tier: ## The end-to-end suite against Tansu, when Tansu is installed
ifeq ($(TANSU),)
	@echo "tansu tier: skipped (tansu is not installed; scripts/tansu.sh install builds it once, ~20 minutes)"
else
	scripts/tansu.sh test
endif

.PHONY: faults
faults: venv dynalite ## The fault suite on FAULT_RECORDS records (default 100,000): kills, outages, restarts, throttling
	FAULT_RECORDS=$${FAULT_RECORDS:-100000} $(CARGO) test --workspace --test faults -- --nocapture

.PHONY: faults-tansu
faults-tansu: venv dynalite ## The fault suite against Tansu, broker restart included (FAULT_RECORDS, default 100,000)
	scripts/tansu.sh faults

.PHONY: bench
bench: dynalite ## ingest vs the Python peer (Powertools + boto3): JSON and Avro batches on moto and dynalite, throughput at 10 ms, instructions, price; BENCH_RUNS (default 3)
	python3 bench/run.py --runs $${BENCH_RUNS:-3}

.PHONY: criterion
criterion: ## Criterion benchmarks of decode + normalize + item building + request bodies (records/s and MB/s per core)
	$(CARGO) bench -p notifications-shared --bench normalize

.PHONY: api-fuzz
api-fuzz: ## schemathesis against the OpenAPI document on a local stack (API_FUZZ_SECONDS, default 120)
	scripts/api-fuzz.sh

.PHONY: fuzz
fuzz: ## Fuzz FUZZ_TARGET (normalize: decode + normalize; http: the query router) for FUZZ_SECONDS (default 60)
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && t=$${FUZZ_TARGET:-normalize} && mkdir -p corpus/$$t && \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t corpus/$$t seeds/$$t -- -max_total_time=$${FUZZ_SECONDS:-60} -dict=$$t.dict

.PHONY: clean
clean: ## Remove build output and the virtualenvs
	$(CARGO) clean
	rm -rf $(VENV) .venv-infra .venv-apifuzz .venv-bench
