# Two commands on a fresh machine with Python and make:
#   make demo   - a runaway agent against the built-in fake LLM, tripped live
#   make test   - installs everything (Python packages, redis-server) and runs every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-all

.PHONY: demo test typecheck setup system-deps bench sdk-suites clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,bench]'  # bench: the peers some tests run breaker beside
	touch $(STAMP)

setup: $(STAMP)

# redis-server and chromium are Debian packages: the Redis ledger tests run a real server,
# the dashboard test loads its page in headless Chromium.
system-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

demo: setup
	$(BIN)/breaker demo

test: setup system-deps
	$(BIN)/python -m pytest -q

typecheck: setup
	$(BIN)/python -m mypy --ignore-missing-imports -p breaker

bench: setup system-deps
	$(BIN)/python benchmarks/run.py

# Not part of `make test`: the openai and anthropic SDKs' own test suites, alone and
# under instrument(), with the tests that only fail under the breaker (tools/sdk_suites/run.py).
sdk-suites: setup
	$(BIN)/python tools/sdk_suites/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
