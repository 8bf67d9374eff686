# Two commands on a fresh machine:  `make run`  and  `make test`.
# Needs: Python 3.11, a Java 17+ runtime and Maven (for the local Kafka broker's jars).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup run demo test unit integration lint typecheck bench lock clean

# The suite runs on this many pytest-xdist workers, a file per worker at a time; each worker
# starts its own Kafka broker (tests/conftest.py). `make test PYTEST_WORKERS=0`: one process.
PYTEST_WORKERS ?= 2

setup: $(VENV)/.installed
	$(BIN)/auditstream kafka fetch
	@# kcat: an independent Kafka client for the interop test (Debian package, root only)
	@command -v kcat >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -q kcat >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q kcat >/dev/null 2>&1; }; }; } || \
	  echo "kcat not installed (not root or no apt-get): its interop test will be skipped"
	@# chromium: the browser the viewer's tests drive (Playwright on the system browser; Debian package, root only)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium not installed (not root or no apt-get): the viewer's browser tests will be skipped"
	@# poppler-utils: pdftotext / pdftoppm open the review reports' PDFs in their tests (Debian package, root only)
	@command -v pdftoppm >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -q poppler-utils >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q poppler-utils >/dev/null 2>&1; }; }; } || \
	  echo "poppler-utils not installed (not root or no apt-get): the review tests' PDF checks will be skipped"

# requirements.lock pins every dependency (and theirs) for reproducible installs: `make lock`.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

run: setup
	$(BIN)/auditstream run

demo: setup
	$(BIN)/auditstream demo

test: setup
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

unit: $(VENV)/.installed
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest -m integration -n $(PYTEST_WORKERS) --dist loadfile

lint: $(VENV)/.installed typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The repo root is the `auditstream` package: type-check it through a link named after it.
typecheck: $(VENV)/.installed
	@tmp=$$(mktemp -d) && ln -s "$(CURDIR)" "$$tmp/auditstream" && \
	  MYPYPATH="$$tmp" $(BIN)/mypy -p auditstream; status=$$?; rm -rf "$$tmp"; exit $$status

bench: setup
	$(BIN)/auditstream bench producer

# Re-pin requirements.lock after a change to the dependencies in pyproject.toml.
lock: $(VENV)/.installed
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --extra dev --strip-extras --no-emit-index-url \
	  --no-emit-find-links --no-emit-trusted-host --output-file requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .auditstream .mypy_cache .ruff_cache .pytest_cache *.egg-info
