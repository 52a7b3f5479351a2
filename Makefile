# Thin wrappers around scripts/: the scripts are the interface (README, CI).
.PHONY: serve test bench lint bootstrap

VENV ?= .venv
export VENV

bootstrap:
	scripts/bootstrap

serve:
	scripts/serve $(ARGS)

test:
	scripts/test $(ARGS)

# scripts/bench is written by the perf engineer.
bench:
	scripts/bench $(ARGS)

lint:
	scripts/bootstrap --no-system-deps --dev
	$(VENV)/bin/ruff check gnetcompat tests
