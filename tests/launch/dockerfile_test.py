"""The Dockerfile: hadolint-clean, one source of truth for the stack, a base as argument.

The build itself is `make test-slow` (tests/launch/image_build.py)."""

import re
import subprocess
import sys
from pathlib import Path

from tests.training.runs import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_hadolint_finds_nothing():
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_instruction(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.replace("WORKDIR /app", "RUN cd /app"))
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "DL3003" in result.stdout


def test_the_image_installs_the_stack_with_make_setup_from_a_base_given_as_argument():
    assert re.search(r"^ARG BASE=debian:bookworm$", DOCKERFILE, re.M)
    assert re.search(r"^FROM \$\{BASE\} AS runtime$", DOCKERFILE, re.M)
    assert "&& make setup TF_PACKAGE=" in DOCKERFILE
    # Nothing else installs Python packages: constraints.txt stays the one pin list.
    assert "pip install" not in DOCKERFILE
    for package in ("openmpi-bin", "libopenmpi-dev", "openssh-server"):
        assert package in DOCKERFILE
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "runs"} <= set(ignored)


def test_the_gpu_variant_is_the_same_recipe_with_other_build_arguments():
    assert "ARG TF_PACKAGE=tensorflow-cpu" in DOCKERFILE
    assert "--build-arg TF_PACKAGE='tensorflow[and-cuda]'" in DOCKERFILE
    # The Horovod build script is in the image before `make setup` runs it.
    assert re.search(r"^COPY .*launch/build_horovod.sh.* launch/$", DOCKERFILE, re.M)
    setup_recipe = (ROOT / "Makefile").read_text()
    assert "install -q -c $(CONSTRAINTS) '$(TF_PACKAGE)'" in setup_recipe
