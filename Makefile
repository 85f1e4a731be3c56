# The README's two commands: `make demo` runs the main job, `make test` runs the test suite.
# Each creates (or reuses) the local virtual environment .venv with the pinned versions.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
INSTALLED_TEST := $(VENV)/.installed-test
# Reference recordings and implementations that are not ours to copy (GPL-3): the tests read them
# from the publisher's wheel on PyPI, fetched at set-up (pinned; tests/reference_data.py checks
# each file's SHA-256). They are never installed: the platform does not depend on them.
REFERENCE := $(VENV)/reference
REFERENCE_WHEELS := $(REFERENCE)/pyActigraphy-1.2.2-py3-none-any.whl $(REFERENCE)/agcounts-0.2.6-py3-none-any.whl

.PHONY: demo test install clean

demo: $(INSTALLED)
	$(BIN)/biomarkers demo

test: $(INSTALLED_TEST) $(REFERENCE_WHEELS)
	$(BIN)/python -m pytest

install: $(INSTALLED)

# torch first, by itself: the CPU build of 2.13.0 that lies on disk. Asked for together with
# the rest, a looser requirement elsewhere could pull a CUDA build of several GB.
$(INSTALLED): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

# The test suite runs the Spark engine too; the platform itself (and `make demo`) runs without pyspark.
# The report's browser test renders it in Debian's Chromium (headless); without root to install it,
# that test says so and is skipped.
$(INSTALLED_TEST): $(INSTALLED)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,spark]'
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "warning: could not install Debian's chromium: the report's browser test will be skipped"
	touch $@

$(REFERENCE)/%-py3-none-any.whl: $(INSTALLED)
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --no-deps --dest $(REFERENCE) \
		$(word 1,$(subst -, ,$*))==$(word 2,$(subst -, ,$*))

clean:
	rm -rf $(VENV) data
