# Everything a fresh machine needs: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
# The quick-start pins torch; installing mmpsp into an existing environment
# keeps the torch already there (setup.py only asks for torch>=2.4).
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.mmpsp-installed
DEMO_OUT ?= work_dirs/demo

.PHONY: venv test demo lint clean

$(STAMP): setup.py requirements.txt $(wildcard requirements/*.txt)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 'setuptools>=77.0.3,<81' wheel
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests

demo: $(STAMP)
	$(BIN)/python tools/demo.py --out $(DEMO_OUT)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) work_dirs
