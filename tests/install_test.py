"""Installing the package into a user's own environment never changes their stack.

As a user meets it: a clean venv with the newest TensorFlow from the index, then
`pip install <checkout>` (not editable). The install must leave TensorFlow and NumPy at
their versions, never add `tensorflow` beside `tensorflow-cpu` (or the reverse), pass
`pip check`, and the installed package must import, compute a loss equal to a NumPy
reference, and train through its CLI (which imports TensorBoard, now a declared
dependency).
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.training.runs import ROOT

pytestmark = pytest.mark.slow


def _pip(venv: Path, *args, timeout=900) -> str:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"pip {' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _distributions(venv: Path) -> dict[str, str]:
    listed = json.loads(_pip(venv, "list", "--format=json"))
    return {item["name"].lower().replace("_", "-"): item["version"] for item in listed}


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory):
    """A venv holding the newest tensorflow-cpu only, as a user's environment would."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    # The interpreter the project's venv was made from, not the venv itself.
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True)
    _pip(venv, "install", "-q", "tensorflow-cpu")
    return venv


def _checkout_copy(tmp_path: Path) -> Path:
    """The tracked files of this checkout (no .venv, no runs): what a clone holds."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    copy = tmp_path / "checkout"
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file() and not source.is_symlink():
            target = copy / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return copy


def test_pip_install_keeps_the_users_tensorflow_and_numpy_and_the_cli_trains(user_venv, tmp_path):
    before = _distributions(user_venv)
    assert "tensorflow-cpu" in before
    assert "tensorflow" not in before
    checkout = _checkout_copy(tmp_path)
    _pip(user_venv, "install", "-q", str(checkout))
    after = _distributions(user_venv)
    for name in ("tensorflow-cpu", "numpy", "keras"):
        assert after[name] == before[name], f"installing focal-dist changed {name}"
    assert "tensorflow" not in after, "installing focal-dist added `tensorflow`"
    assert "focal-dist" in after
    assert "tensorboard" in after
    _pip(user_venv, "check")

    python = str(user_venv / "bin" / "python")
    probe = (
        "import numpy as np, tensorflow as tf, focal_dist\n"
        "from focal_dist import losses\n"
        "y = np.array([[1.0], [0.0], [1.0]], np.float32)\n"
        "x = np.array([[2.0], [-1.0], [-3.0]], np.float32)\n"
        "got = losses.binary_focal_crossentropy(y, x, gamma=2.0, from_logits=True).numpy()\n"
        "p = 1 / (1 + np.exp(-x.astype(np.float64)))\n"
        "pt = np.where(y == 1, p, 1 - p)\n"
        "want = (-(1 - pt) ** 2 * np.log(pt))[:, 0]\n"
        "assert np.allclose(got, want, rtol=1e-5), (got, want)\n"
        "print(focal_dist.__file__)\n"
    )
    # From a folder without the checkout, so that the installed copy is the one imported.
    result = subprocess.run(
        [python, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert str(user_venv) in result.stdout, "focal_dist was not imported from the install"

    workdir = tmp_path / "run"
    train = subprocess.run(
        [
            python,
            "-m",
            "focal_dist.train",
            "--config=default",
            f"--workdir={workdir}",
            "--config.train.steps=4",
            "--config.train.steps_per_loop=2",
            "--config.train.eval_every=0",
            "--config.data.synthetic.num_train=1024",
            "--config.data.synthetic.num_eval=256",
            "--config.data.synthetic.num_calibration=512",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""},
    )
    assert train.returncode == 0, train.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["step"] == 4
    assert summary["complete"]
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))


def test_the_wheel_requires_no_tensorflow_distribution_outside_its_extras(tmp_path):
    """Users bring `tensorflow` (GPUs) or `tensorflow-cpu`: neither is a hard requirement,
    so pip never swaps one for the other; the extras name the tested release."""
    checkout = _checkout_copy(tmp_path)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(checkout),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("focal_dist-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    hard = [r for r in requires if "extra ==" not in r]
    assert not [r for r in hard if r.lower().startswith("tensorflow")], hard
    assert any(r.startswith("tensorboard") for r in hard), hard
    assert any(r.startswith("numpy") and "<3" in r for r in hard), hard
    extras = {r.split("extra ==")[1].strip(" '\"") for r in requires if "extra ==" in r}
    assert {"cpu", "gpu", "parquet", "dicom", "horovod"} <= extras
    assert any(r.startswith("tensorflow-cpu") and 'extra == "cpu"' in r for r in requires)
