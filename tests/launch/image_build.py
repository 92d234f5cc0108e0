"""Builds the image for real and trains in it: `make test-slow` (not part of `make test`).

Where no registry can be pulled from (as on the project's machines), the base image is
made from Debian's packages: `debootstrap --variant=minbase bookworm` + `podman import`.
Set FOCAL_DIST_BASE_IMAGE=debian:bookworm to build from the registry's image instead.
`podman run` is not available here, so the Dockerfile's `smoke` stage trains with
`horovodrun -np 2` (Gloo, then MPI) as a RUN step and checks the checkpoint, the
TensorBoard events and summary.json that the Kubernetes jobs rely on.
Measured: 58 min on a busy 2-core machine, most of it compiling Horovod.
"""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.training.runs import ROOT

LOCAL_BASE = "localhost/focal-dist-base:bookworm"


def _podman() -> str:
    podman = shutil.which("podman")
    assert podman, "needs podman (`make container-deps` installs podman, buildah, debootstrap)"
    return podman


def _debian_mirror() -> str:
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        if path.is_file():
            found = re.search(r"(https?://\S+/debian)\b(?!-security)", path.read_text())
            if found:
                return found.group(1)
    return "http://deb.debian.org/debian"


def _base_image(podman: str, tmp_path: Path) -> str:
    if os.environ.get("FOCAL_DIST_BASE_IMAGE"):
        return os.environ["FOCAL_DIST_BASE_IMAGE"]
    exists = subprocess.run([podman, "image", "exists", LOCAL_BASE], check=False)
    if exists.returncode != 0:
        assert shutil.which("debootstrap"), "needs debootstrap (`make container-deps`)"
        rootfs = tmp_path / "rootfs"
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), _debian_mirror()],
            check=True,
            capture_output=True,
        )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run([podman, "import", "-", LOCAL_BASE], stdin=tar.stdout, check=True)
        assert tar.wait() == 0
    return LOCAL_BASE


@pytest.mark.slow
def test_the_image_builds_and_trains_with_horovodrun_np_2(tmp_path):
    podman = _podman()
    base = _base_image(podman, tmp_path)
    log = tmp_path / "build.log"
    command = [
        "nice", podman, "build", "--isolation", "chroot", "--format", "docker",
        "--target", "smoke",
        "--build-arg", f"BASE={base}", "-t", "focal-dist:smoke", str(ROOT),
    ]  # fmt: skip
    # pip inside the build trusts what pip here trusts (a proxy's CA, where there is one).
    host_ca = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    if host_ca:
        command[-1:-1] = [
            "-v",
            f"{host_ca}:/etc/build-ca.crt:ro",
            "--build-arg",
            "PIP_CERT=/etc/build-ca.crt",
        ]
    start = time.monotonic()
    with log.open("w") as sink:
        result = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, check=False)
    text = log.read_text()
    print(f"podman build: {time.monotonic() - start:.0f} s, log {log}")
    assert result.returncode == 0, text[-6000:]
    # The smoke stage ran both transports through launch/horovod.sh and the CLI.
    for transport in ("--gloo", "--mpi"):
        assert re.search(rf"\+ \S*horovodrun -np 2 -H localhost:2 {transport} ", text), transport
    assert "ok   horovod (TensorFlow, Gloo, MPI)" in text
