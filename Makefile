# Two commands do everything: `make test` and `make book` (PROFILE=smoke|toy|paper).
VENV    := .venv
PY      := $(VENV)/bin/python
PROFILE ?= toy
# notebooks executed at once where dependencies allow (the toy notebooks use one CPU thread each)
JOBS    ?= 2
STAMP   := $(VENV)/.installed

.PHONY: test book lint format venv clean-book

venv: $(STAMP)

# Create .venv when missing and install the project into it. Without CUDA, the CPU build of
# torch 2.13.0 goes in first (it installs from local disk in seconds; an unpinned torch pulls GBs).
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q torch==2.13.0; fi
	$(PY) -m pip install -q -e ".[book,dev,harness]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(PY) -m pytest -q

book: $(STAMP)
	$(PY) -m frpo.cli book run --profile $(PROFILE) --jobs $(JOBS)
	$(PY) -m frpo.cli book build --profile $(PROFILE)

clean-book:
	rm -rf book/_build
