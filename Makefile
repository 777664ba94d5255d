# Guichet: `make run` serves the portal with demo data, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test setup system venv lint typecheck stop lock messages

run: setup
	$(PY) scripts/dev.py run

test: setup
	$(PY) scripts/dev.py test $(PYTEST_ARGS)

setup: system venv

system:
	@bash scripts/system-packages.sh

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	@touch $@

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: setup
	$(PY) -m mypy .

stop:
	$(PY) scripts/dev.py stop

# Re-pin requirements.lock from pyproject.toml's ranges.
lock:
	rm -rf var/lockenv && $(PYTHON) -m venv var/lockenv
	var/lockenv/bin/pip install -q --upgrade pip
	var/lockenv/bin/pip install -q $$(var/lockenv/bin/python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb'))['project']; print(' '.join(repr(x) for x in d['dependencies'] + d['optional-dependencies']['dev']))")
	var/lockenv/bin/pip freeze --exclude-editable > requirements.lock

messages:
	$(PY) manage.py makemessages -l ro -l pl -l it -l sk --ignore .venv --ignore var --ignore "tests/*" --ignore "bench/*" --no-obsolete
