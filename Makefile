# Thin wrappers around scripts/: the scripts are the interface (README, CI).
.PHONY: serve test bench lint docs bootstrap

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

# ruff, mypy, lint-imports, pydoctor (warnings as errors), towncrier: scripts/lint.
lint:
	scripts/lint

# The API documentation (epytext, pydoctor) in apidocs/; settings in pyproject.toml;
# then the guides (docs/*.rst: porting, deployment) as HTML beside it.
docs:
	scripts/bootstrap --no-system-deps --dev
	$(VENV)/bin/pydoctor gnetcompat
	$(VENV)/bin/python scripts/docs
