# tickmesh: every day-to-day command. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help deps tools proto proto-breaking proto-release docs build up down status logs test test-faults lint format bench bench-quick soak clean k8s-up k8s-down test-k8s test-k8s-full

include deploy/versions.env
TOOLS := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(PATH)

# Every test file in the repository: unit tests beside each service, and the
# cross-service suites under tests/. The fault-injection and hostile-client
# suites (minutes of whole-stack runs) have their own target, which CI runs too.
SLOW_TESTS = $(shell find tests/faults tests/hostile -name '*.test.ts' | sort)
# The live-cluster suites (make test-k8s, make test-k8s-full) need a cluster of their own.
CLUSTER_TESTS = $(shell find tests/k8s/cluster -name '*.test.ts' | sort)
TEST_FILES = $(filter-out $(SLOW_TESTS) $(CLUSTER_TESTS),$(shell find packages services tests -name '*.test.ts' -not -path '*/node_modules/*' | sort)) tests/faults/checks.test.ts

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

deps: node_modules/.package-lock.json ## Install npm dependencies (npm ci)
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

tools: ## Install the pinned nats-server, grpcurl and ghz into .tools/bin (go install, deploy/versions.env)
	@bash deploy/install-tools.sh

proto: deps ## Lint the protos, regenerate TypeScript and the reflection descriptor set
	npx buf lint proto
	rm -rf packages/kit/src/gen
	npx buf generate --template proto/buf.gen.yaml
	npx buf build proto -o packages/kit/descriptors/tickmesh.binpb
	npx buf build node_modules/grpc-health-check/proto -o packages/kit/descriptors/health.binpb

docs: deps ## Regenerate docs/configuration.md from the config specs
	npx tsx tests/contracts/render-config-docs.ts

proto-breaking: deps ## Check the protos for breaking changes against the main branch (make lint checks the last release)
	npx buf breaking proto --against '.git#branch=main,subdir=proto'

build: deps ## Compile TypeScript to dist/
	npm run build

up: deps tools build ## Start infrastructure and every service in the background, wait for health, print URLs
	@bash deploy/local-infra.sh up
	@bash deploy/services.sh up

down: ## Stop what `make up` started (services, then the infrastructure it started)
	@bash deploy/services.sh down
	@bash deploy/local-infra.sh down

status: ## Show what is running
	@bash deploy/services.sh status
	@bash deploy/local-infra.sh status

logs: ## Follow the services' logs
	tail -F .run/logs/*.log

test: deps tools ## The whole suite: type check, contracts, unit, integration (real NATS, Redis, MariaDB), k8s manifests
	npm run typecheck
	node --import tsx --test --test-timeout=600000 $(TEST_FILES)

test-faults: deps tools ## Fault injection (kill -9, restarts, partitions) and hostile clients on private stacks (~6 min)
	node --import tsx --test --test-timeout=900000 $(filter-out tests/faults/checks.test.ts,$(SLOW_TESTS))

k8s-up: deps tools ## A local single-node Kubernetes (offline, root) running the mesh: k8s/overlays/local (docs/kubernetes.md)
	@bash deploy/k8s-local/up.sh

k8s-down: ## Stop the local cluster; restores the network and kernel settings it changed
	@bash deploy/k8s-local/cluster.sh down

test-k8s: deps tools ## The mesh on the local cluster: deploy, health, quotes, a price-cache pod deleted (~5 min warm, cluster torn down after)
	node --import tsx --test --test-timeout=1800000 tests/k8s/cluster/smoke.test.ts

test-k8s-full: deps tools ## test-k8s, then a rolling upgrade from the last release under load, a gateway rolling restart, the ghz Job
	node --import tsx --test --test-timeout=1800000 tests/k8s/cluster/smoke.test.ts
	node --import tsx --test --test-timeout=3600000 tests/k8s/cluster/full.test.ts

# Load tests open thousands of sockets; the hard limit may be below 65536.
RAISE_FD_LIMIT = ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn)

bench: deps tools build ## Every benchmark against bare baselines (~10 min) -> tests/load/results/ (git-ignored), each figure beside tests/load/baseline.json (options: BENCH_ARGS="--stack private ...")
	$(RAISE_FD_LIMIT); node --import tsx tests/load/run.ts $(BENCH_ARGS)

bench-quick: deps tools build ## A short smoke run of every benchmark scenario (~2 min)
	$(RAISE_FD_LIMIT); node --import tsx tests/load/run.ts --quick $(BENCH_ARGS)

soak: deps ## 10 minutes of moderate load; fails on RSS, event-loop or latency growth (SOAK_DURATION=90s for a short run)
	$(RAISE_FD_LIMIT); node --import tsx tests/soak/soak.ts

# The descriptor set of the last release: what `buf breaking` compares the protos with.
PROTO_RELEASE = $(shell ls -v proto/releases/v*.binpb | tail -n 1)

lint: deps ## ESLint, Prettier, buf lint, and buf breaking against the last release's descriptor set
	npx buf lint proto
	npx buf breaking proto --against $(PROTO_RELEASE)
	npx eslint .
	npx prettier --check .

proto-release: deps ## Record the protos of a release: make proto-release VERSION=v0.2.0 (commit the file)
	@[[ "$(VERSION)" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$$ ]] || { echo "VERSION must look like v1.2.3" >&2; exit 2; }
	@[[ ! -e proto/releases/$(VERSION).binpb ]] || { echo "proto/releases/$(VERSION).binpb exists" >&2; exit 2; }
	npx buf build proto -o proto/releases/$(VERSION).binpb

format: deps ## Format the code with Prettier
	npx prettier --write .

clean: ## Remove build output (keeps .run data; `make down` first)
	rm -rf dist
