# Two commands on a fresh machine: `make book` builds the course and opens it; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: book test release setup

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	# The CPU build of PyTorch first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt

setup: $(BIN)/activate

book: setup
	$(BIN)/jupyter-book build . -W
	@$(BIN)/python -c "import webbrowser, pathlib; p = pathlib.Path('_build/html/index.html').resolve(); print('The book is at', p); webbrowser.open(p.as_uri())"

test: setup
	$(BIN)/python -m pytest

release: setup
	$(BIN)/python -m autograder release
