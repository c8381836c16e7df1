# Two commands do all set-up on a fresh machine:
#   make demo   - the whole pipeline on the synthetic demo, to the tables (CPU, minutes)
#   make test   - the test suite
# Both create the virtual environment in .venv from nothing on first use, as does
#   make rehearsal - the real config.yaml on tiny synthetic inputs, to Table 1 (CPU, ~10 min)

PYTHON ?= python3
VENV   ?= .venv
CORES  ?= 2
BIN    := $(abspath $(VENV))/bin
# Rules call `python -m visdial_lg`: put the venv's python first on PATH.
export PATH := $(BIN):$(PATH)

.PHONY: install demo demo-seeds rehearsal report screenshots test lint dry-run clean-demo clean-rehearsal

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# The CUDA build of PyTorch (runs on CPU too); torchvision must match it.
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e '.[workflow,test]'
	touch $@

demo: install
	$(BIN)/snakemake -s Snakefile --directory demo --configfile configs/demo.yaml \
		--cores $(CORES) --show-failed-logs

# The demo with three training seeds (configs/demo-seeds.yaml), in the same folder: the
# seed-0 runs of `make demo` are reused; tables with mean ± std, intervals, significance.
demo-seeds: install
	$(BIN)/snakemake -s Snakefile --directory demo --configfile configs/demo.yaml configs/demo-seeds.yaml \
		--cores $(CORES) --show-failed-logs

# The real config.yaml, unchanged, on tiny synthetic inputs given through its `local:`
# paths (weights pickle, GloVe file, dialogs, images: docs/rehearsal.md), 1 epoch,
# to Table 1 on CPU. Outputs under rehearsal/results/.
rehearsal: install
	$(BIN)/python -m visdial_lg.demo.rehearsal --out rehearsal/inputs
	$(BIN)/snakemake -s Snakefile --directory rehearsal \
		--configfile config.yaml rehearsal/inputs/rehearsal.yaml \
		--cores $(CORES) --show-failed-logs results/table1.csv

# The Snakemake report of the demo (every table and figure with captions):
# demo/results/report.html
report: demo
	$(BIN)/snakemake -s Snakefile --directory demo --configfile configs/demo.yaml \
		--report results/report.html

# The README's pictures (docs/images/), made by the tests that check them, on `make demo`'s
# folder: the explorer in headless Chromium, the chat on a demo image.
screenshots: demo
	VISDIAL_LG_PIPELINE=demo VISDIAL_LG_SCREENSHOTS=docs/images VISDIAL_LG_REQUIRE_BROWSER=1 \
		$(BIN)/pytest -q -p no:cacheprovider tests/workflow/test_explorer_browser.py tests/workflow/test_chat.py

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/snakemake --lint

dry-run: install
	$(BIN)/snakemake -n --cores 8 results/table1.csv

clean-demo:
	rm -rf demo

clean-rehearsal:
	rm -rf rehearsal
