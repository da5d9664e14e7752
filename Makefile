# Two entry points: `make demo` and `make test`. Both create .venv from the lock file (uv.lock)
# when needed, with uv; a machine needs only Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# The uv that wrote uv.lock; installed from PyPI into .venv when it is missing.
UV_VERSION := 0.13.9
# Both cores; tests of one file stay on one worker (their module fixtures are built once).
PYTEST_WORKERS ?= 2
# The extras `make test` installs: the test tools and pyspark (the Spark tests run on a
# local[2] session; pandera's eager import of pyspark.pandas is kept out by
# zapanalytics/pandera_guard.py). `make demo` installs the toolkit alone.
TEST_EXTRAS ?= dev spark
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
BENCH_STAMP := $(VENV)/.installed-bench
LAB_STAMP := $(VENV)/.installed-notebook

# .venv is the environment; never let uv fetch an interpreter of its own.
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

# --locked: stop, saying so, when pyproject.toml changed and uv.lock was not remade (`make lock`).
# --inexact: leave alone what else .venv holds (another extra, a package being tried out).
SYNC := $(UV) sync --locked --inexact

.PHONY: demo test test-slow lint bench lab lock browser java clean

$(UV):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar on 'uv==$(UV_VERSION)'

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(SYNC) $(addprefix --extra ,$(TEST_EXTRAS)) || \
	  { echo "(when uv.lock is out of date with pyproject.toml: run 'make lock' and commit uv.lock)"; exit 1; }
	touch $@

$(DEMO_STAMP): pyproject.toml uv.lock | $(UV)
	$(SYNC) || \
	  { echo "(when uv.lock is out of date with pyproject.toml: run 'make lock' and commit uv.lock)"; exit 1; }
	touch $@

demo: $(DEMO_STAMP)
	$(BIN)/zapanalytics demo --out out

test: $(STAMP) browser java
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test-slow: $(STAMP) browser java
	$(BIN)/python -m pytest -q -m slow -n $(PYTEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

$(BENCH_STAMP): $(STAMP)
	$(SYNC) $(addprefix --extra ,$(TEST_EXTRAS)) --extra bench
	touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

$(LAB_STAMP): $(STAMP)
	$(SYNC) $(addprefix --extra ,$(TEST_EXTRAS)) --extra notebook
	touch $@

# JupyterLab on the notebooks (an extra: the tests run the notebooks without it).
lab: $(LAB_STAMP)
	$(BIN)/jupyter lab notebooks/

# After editing the dependencies in pyproject.toml: remake uv.lock (keeping every pinned version
# that still fits) and install it. `make lock LOCK_ARGS=--upgrade` moves everything to the newest.
lock: | $(UV)
	$(UV) lock $(LOCK_ARGS)
	$(SYNC) $(addprefix --extra ,$(TEST_EXTRAS))
	touch $(STAMP)

# Debian's Chromium for the report's browser test; best effort (the test skips, saying why,
# when it cannot be installed).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "note: could not install chromium; the browser test will be skipped"; }

# A Java runtime for the Spark tests, from Debian's packages when none is there; best effort
# (the Spark tests skip, saying why, without one).
java:
	@command -v java >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null) \
	    || echo "note: could not install a Java runtime; the Spark tests will be skipped"; }

clean:
	rm -rf out .pytest_cache
