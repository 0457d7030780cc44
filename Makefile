# Accord: `make run` starts the platform, `make test` runs the tests. `make help` lists all.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: uv
uv: # install uv from PyPI when the machine has none
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

.PHONY: install
install: uv slapd mariadb chromium prometheus kafka ## Install Python and every package of the workspace into .venv (from uv.lock)
	@$(UV) sync --frozen --all-packages --quiet

# Apache Kafka's broker from Maven Central (pinned in deploy/kafka/pom.xml) into
# deploy/kafka/lib, again only when the pom changed. Without java and mvn, Tansu stays the
# only broker and the tests that need Apache Kafka say why they are skipped.
KAFKA_LIB := deploy/kafka/lib
.PHONY: kafka
kafka: # fetch Apache Kafka's jars when java and mvn exist
	@if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then \
		echo "java or mvn is missing: Apache Kafka is not fetched, so make run uses Tansu" \
			"and make test runs on Tansu, skipping the tests that need Apache Kafka" >&2; \
	elif [ ! -f $(KAFKA_LIB)/.fetched ] || [ deploy/kafka/pom.xml -nt $(KAFKA_LIB)/.fetched ]; then \
		echo "Fetching Apache Kafka from Maven Central (deploy/kafka/pom.xml)"; \
		rm -rf $(KAFKA_LIB) && \
		out=$$(mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies \
			-DoutputDirectory=lib -DincludeScope=runtime 2>&1) \
			|| { echo "$$out" >&2; exit 1; }; \
		touch $(KAFKA_LIB)/.fetched; \
	fi

# OpenLDAP for the LDAP target the tests start (Debian packages; slapd lives in /usr/sbin).
# sudo only when not root; `apt-get update` only when the install fails (stale package lists).
APT_INSTALL_LDAP := env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	--no-install-recommends slapd ldap-utils

.PHONY: slapd
slapd: # install OpenLDAP slapd and ldap-utils when slapd is missing
	@if ! { command -v slapd || test -x /usr/sbin/slapd; } >/dev/null 2>&1 \
		|| ! command -v ldapsearch >/dev/null 2>&1; then \
		if ! command -v apt-get >/dev/null 2>&1; then \
			echo "slapd and ldap-utils are missing and there is no apt-get: install OpenLDAP" \
				"by hand for the LDAP target tests" >&2; \
		else \
			sudo=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
			echo "Installing the Debian packages slapd and ldap-utils"; \
			$$sudo $(APT_INSTALL_LDAP) \
				|| { $$sudo apt-get update -qq && $$sudo $(APT_INSTALL_LDAP); }; \
		fi; \
	fi

# MariaDB for the sql source's tests (Debian packages; mariadbd lives in /usr/sbin). The tests
# start their own server as a child (accord.stack.mariadb), so the Debian service is not used.
APT_INSTALL_MARIADB := env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	--no-install-recommends mariadb-server mariadb-client

.PHONY: mariadb
mariadb: # install MariaDB's server and client when mariadbd is missing
	@if ! { command -v mariadbd || test -x /usr/sbin/mariadbd; } >/dev/null 2>&1 \
		|| ! command -v mariadb-install-db >/dev/null 2>&1; then \
		if ! command -v apt-get >/dev/null 2>&1; then \
			echo "mariadbd is missing and there is no apt-get: install MariaDB by hand" \
				"for the MariaDB sql source tests" >&2; \
		else \
			sudo=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
			echo "Installing the Debian packages mariadb-server and mariadb-client"; \
			$$sudo $(APT_INSTALL_MARIADB) >/dev/null \
				|| { $$sudo apt-get update -qq && $$sudo $(APT_INSTALL_MARIADB) >/dev/null; }; \
		fi; \
	fi

# Chromium for the dashboard's browser test (Playwright drives the Debian build: its own
# `playwright install` downloads from a CDN, which is not always reachable).
APT_INSTALL_CHROMIUM := env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	--no-install-recommends chromium

.PHONY: chromium
chromium: # install the Debian chromium when missing
	@if ! command -v chromium >/dev/null 2>&1; then \
		if ! command -v apt-get >/dev/null 2>&1; then \
			echo "chromium is missing and there is no apt-get: the dashboard browser test" \
				"will be skipped" >&2; \
		else \
			sudo=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
			echo "Installing the Debian package chromium"; \
			$$sudo $(APT_INSTALL_CHROMIUM) >/dev/null \
				|| { $$sudo apt-get update -qq && $$sudo $(APT_INSTALL_CHROMIUM) >/dev/null; }; \
		fi; \
	fi

# promtool for the alerting rules' tests (deploy/prometheus): Debian's prometheus package
# ships it (2.42 on Debian 12). Without apt-get the tests that run promtool are skipped,
# saying why, unless ACCORD_REQUIRE_PROMTOOL=1 (then they fail).
APT_INSTALL_PROMETHEUS := env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	--no-install-recommends prometheus

.PHONY: prometheus
prometheus: # install Debian's prometheus (for promtool) when promtool is missing
	@if ! command -v promtool >/dev/null 2>&1; then \
		if ! command -v apt-get >/dev/null 2>&1; then \
			echo "promtool is missing and there is no apt-get: the alerting rules' tests" \
				"will be skipped (install Prometheus's promtool by hand)" >&2; \
		else \
			sudo=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
			echo "Installing the Debian package prometheus (promtool)"; \
			$$sudo $(APT_INSTALL_PROMETHEUS) >/dev/null \
				|| { $$sudo apt-get update -qq && $$sudo $(APT_INSTALL_PROMETHEUS) >/dev/null; }; \
		fi; \
	fi

.PHONY: run
run: install ## Run the whole platform locally (embedded broker and PostgreSQL); Ctrl-C stops it
	$(RUN) accord up

.PHONY: test
# --durations=25: every log names the slowest tests, so a slow one is seen where it came in.
test: install ## Run every test: unit, integration (real broker, PostgreSQL, SCIM) and end-to-end
	$(RUN) pytest --durations=25 $(PYTEST_ARGS)

.PHONY: unit
unit: install ## Run only the fast unit tests
	$(RUN) pytest -m "not integration and not e2e" $(PYTEST_ARGS)

.PHONY: lint
lint: install ## Check formatting, lint rules and import boundaries
	$(RUN) ruff format --check .
	$(RUN) ruff check .
	$(RUN) lint-imports

.PHONY: fmt
fmt: install ## Format the code and apply safe lint fixes
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

.PHONY: typecheck
typecheck: install ## Type-check the sources with mypy (strict)
	$(RUN) mypy -p accord.events -p accord.runtime -p accord.stack -p accord.orchestrator -p accord.provisioner -p accord.authz -p accord.auditor -p accord.authn -p accord.sources

.PHONY: schemas
schemas: install ## Regenerate the event JSON Schemas and the AsyncAPI document
	$(RUN) accord schemas libs/events

.PHONY: deploy-files
deploy-files: install ## Regenerate Kafka topics, KafkaUsers, the compose topic list and the ACL table
	$(RUN) accord deploy

.PHONY: db-schemas
db-schemas: install ## Rewrite services/*/schema.sql from the migrations (a test fails while they differ)
	$(RUN) python -m accord.stack.db_schemas

.PHONY: bench
bench: install ## End-to-end benchmark on Apache Kafka (BROKER=tansu: on Tansu; ~6 min): benchmarks/results/latest/
	$(RUN) python benchmarks/e2e.py $(if $(BROKER),--broker $(BROKER)) $(BENCH_ARGS)

.PHONY: bench-authz
bench-authz: install ## Authz decisions per second (Cedar, one process; single and batch)
	$(RUN) python benchmarks/authz_decisions.py

.PHONY: bench-authn
bench-authn: install ## Lockout latency (failures to disabled accounts and a CAEP SET) and sign-in API latency
	$(RUN) python benchmarks/authn.py $(if $(BROKER),--broker $(BROKER))

.PHONY: bench-audit
bench-audit: install ## Audit records stored per second (chained, batched) and verify time
	$(RUN) python benchmarks/audit_log.py

.PHONY: bench-connectors
bench-connectors: install ## Connector operations per second against real targets
	$(RUN) python benchmarks/connectors.py

.PHONY: bench-sources
bench-sources: install ## Sources: the pure core (sources_diff.py), then whole runs on real parts (sources_run.py)
	$(RUN) python benchmarks/sources_diff.py
	$(RUN) python benchmarks/sources_run.py $(if $(BROKER),--broker $(BROKER))

.PHONY: bench-sources-run
bench-sources-run: install ## Sources on PostgreSQL + Kafka (BROKER=tansu): runs, relay, SQL/MariaDB/LDAP readers (~5 min)
	$(RUN) python benchmarks/sources_run.py $(if $(BROKER),--broker $(BROKER))

.PHONY: bench-scim
bench-scim: install ## SCIM server listing: pages of 100 through N users (1,000 / 10,000 / 100,000) and filtered searches (PYTHON=1: the old Python path)
	$(RUN) python benchmarks/scim_listing.py $(if $(SIZES),$(SIZES),1000 10000 100000) $(if $(PYTHON),--python)

.PHONY: bench-timers
bench-timers: install ## Lateness of 1,000 time-trigger timers due over 20 s (p50/p90/p99/max) and orchestrator CPU
	$(RUN) python benchmarks/workflow_timers.py $(if $(BROKER),--broker $(BROKER))

.PHONY: bench-cli
bench-cli: install ## Start-up of the accord command: median wall time of --help and simple commands
	$(RUN) python benchmarks/cli_startup.py

.PHONY: clean
clean: ## Remove local data (.accord) and caches
	rm -rf .accord .pytest_cache .mypy_cache .ruff_cache
