# The README's two set-up commands. Each is self-sufficient on a fresh machine with python3 (>= 3.10):
#   make serve   create .venv, install, fetch the demo model, serve configs/demo.yaml on 127.0.0.1:8000
#   make test    the same set-up, then lint, type-check and the whole test suite (real model, real server)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEMO_MODEL := models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
# The vision tests' tiny random-weight Qwen2-VL, exported with torch in its own venv (.venv-fixtures).
VLM_FIXTURE := models/tiny-qwen2-vl/openvino_language_model.xml

.PHONY: serve test install model vlm-fixture lint

serve: install model
	$(BIN)/openarc serve --config configs/demo.yaml

test: install model vlm-fixture lint
	$(BIN)/pytest

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

model: $(DEMO_MODEL)

$(DEMO_MODEL): | $(INSTALLED)
	$(BIN)/python scripts/models.py smollm2

vlm-fixture: $(VLM_FIXTURE)

$(VLM_FIXTURE):
	$(PYTHON) scripts/build_tiny_vlm.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
