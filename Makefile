# The two set-up commands: `make demo` and `make test` (each creates .venv on first use).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-without-fast-libs test-python3.13 lint fuzz stress bench clean

# fast: the compression libraries, required only where they have wheels; `make test` expects
# them everywhere (on 32-bit ARM, pip builds them), test-without-fast-libs runs as without.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench,fast]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

lint: $(STAMP)
	$(PY) -m ruff check src tests bench examples
	$(PY) -m mypy

test: lint
	$(PY) -m pytest -q

# As on 32-bit ARM (see src/arcman/_backends.py): tests/conftest.py makes their imports fail.
test-without-fast-libs: $(STAMP)
	$(PY) -m pytest -q --without-fast-libs

# On Raspberry Pi OS's Python (Debian trixie's 3.13), unpacked beside this one (see the script).
PI_VENV := .venv-3.13
$(PI_VENV)/.installed: pyproject.toml .ci/debian-python | $(STAMP)
	PIP=$(VENV)/bin/pip .ci/debian-python trixie 3.13 $(PI_VENV)
	touch $@

test-python3.13: $(PI_VENV)/.installed
	$(PI_VENV)/bin/python -m pytest -q

fuzz: $(STAMP)
	ARCMAN_FUZZ_CASES=20000 $(PY) -m pytest -q tests/test_fuzz.py

stress: $(STAMP)
	$(PY) -m pytest -q -m stress --run-stress

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) $(PI_VENV) $(PI_VENV).debian build .pytest_cache .mypy_cache .ruff_cache
