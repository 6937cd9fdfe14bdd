# Switchboard: `make run` (everything in one process) and `make test` (the whole suite).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TSTAMP  := $(VENV)/.installed-test
export PORT ?= 5000

.PHONY: run test lint migrate demo up flower bench bench-100k install browser services clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $(STAMP)

# The test set on top of the runtime one: `make run` never installs it.
$(TSTAMP): $(STAMP) requirements-test.txt
	$(BIN)/pip install -q -r requirements-test.txt
	touch $(TSTAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python app.py

migrate: $(STAMP)
	$(BIN)/python -m models.migrate

# The demo shop's data for the distributed mode (`make run` loads it by itself).
demo: $(STAMP)
	$(BIN)/python -m models.migrate
	$(BIN)/python -m demo_data

# Distributed mode: needs REDIS_URL (and DATABASE_URL for PostgreSQL).
up: $(STAMP)
	@test -n "$$REDIS_URL" || (echo "set REDIS_URL (and DATABASE_URL) for the distributed mode"; exit 2)
	$(BIN)/python -m models.migrate
	SB_BIND_LOCAL=1 $(BIN)/honcho start -f Procfile web worker beat flower

flower: $(STAMP)
	$(BIN)/celery -A worker flower --address=127.0.0.1 --port=5555

# Chromium for the browser tests, from Debian's package.
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

services:
	@bash scripts/services.sh

test: $(TSTAMP) browser services lint
	$(BIN)/python -m pytest

# ruff and mypy over the layers below the HTTP one (pyproject.toml says what they check).
lint: $(TSTAMP)
	$(BIN)/ruff check actions broadcast models providers tasks
	$(BIN)/mypy actions broadcast models providers tasks

bench: $(TSTAMP)
	cd bench && npm install --no-audit --no-fund --silent && ./run.sh

# 100 000 idle WebSockets over six web processes, one publish to all; Switchboard then the Node peer.
bench-100k: $(TSTAMP)
	cd bench && npm install --no-audit --no-fund --silent && ./run-100k.sh

clean:
	rm -rf $(VENV) var
