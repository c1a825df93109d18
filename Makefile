# `make demo`: set everything up and train the quick Fashion-MNIST preset (minutes on a CPU).
# `make test`: set everything up and run the test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp
# The torch/torchvision pair that installs together on CPU-only machines here; any torch>=2.4 works.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

# `make demo DEMO_DATA=DIR` trains on the Fashion-MNIST IDX files in DIR.
DEMO_DATA ?=
DATA_OPT = $(if $(DEMO_DATA),--data "$(DEMO_DATA)",)

.PHONY: install demo test data-fashion-mnist bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

# Fashion-MNIST from wherever it already is; else Debian's package (as root); else say how.
data-fashion-mnist: install
	@$(BIN)/wgan datasets --check fashion-mnist $(DATA_OPT) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's dataset-fashion-mnist"; \
	    (apt-get install -y -qq dataset-fashion-mnist || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) >/dev/null; \
	  fi; \
	  $(BIN)/wgan datasets --check fashion-mnist $(DATA_OPT); }

demo: data-fashion-mnist
	$(BIN)/wgan train --preset quick --eval-metrics fcd,class-coverage $(DATA_OPT)
	@echo "Open the newest folder in runs/: samples/, losses.png, timelapse.gif, report.html"

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/wgan bench --preset fashion-gp

clean:
	rm -rf $(VENV) runs .pytest_cache
