"""Starting real training runs (CLI, launchers) for the tests, and reading them back."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The small model and data most CLI tests train, in one place; each test adds what it
# is about (`{**runs.TINY, "train.steps": 40}`).
TINY = {
    "train.global_batch_size": 64,
    "train.eval_every": 0,
    "data.num_features": 8,
    "data.synthetic.num_train": 2048,
    "data.synthetic.num_eval": 256,
    "data.synthetic.num_calibration": 512,
    "model.hidden_units": "(16,)",
}
BIN = Path(sys.executable).parent


def env(**extra) -> dict:
    return dict(
        os.environ,
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        TF_CPP_MIN_LOG_LEVEL="2",
        **extra,
    )


def distributed_command(distribution: str, python_args: list) -> list:
    """`python *python_args` on two workers (multiworker, horovod[_mpi]) or one process."""
    python = [sys.executable, *python_args]
    if distribution in ("default", "mirrored"):
        return python
    if distribution == "multiworker":
        launcher = [sys.executable, str(ROOT / "launch" / "multiworker.py"), "--num_workers=2"]
        return [*launcher, "--", *python, "--distribution=multiworker"]
    horovodrun = [str(BIN / "horovodrun"), "-np", "2", "-H", "localhost:2"]
    transport = {"horovod": ["--gloo"], "horovod_gloo": ["--gloo"], "horovod_mpi": ["--mpi"]}
    return [*horovodrun, *transport[distribution], *python, "--distribution=horovod"]


def train_command(distribution: str, workdir, overrides: dict, config="configs/default.py"):
    flags = [f"--config={ROOT / config}", f"--workdir={workdir}"]
    flags += [f"--config.{key}={value}" for key, value in overrides.items()]
    command = distributed_command(distribution, ["-m", "focal_dist.train", *flags])
    if distribution == "mirrored":
        command += ["--distribution=mirrored", "--num_cpu_devices=4"]
    return command


def run(command, timeout=600, check=True):
    result = subprocess.run(
        command, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert result.returncode == 0, (
            f"{' '.join(map(str, command))}\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
        )
    return result


def summary(workdir) -> dict:
    return json.loads((Path(workdir) / "summary.json").read_text())


def final_weights(workdir):
    import keras

    model = keras.models.load_model(Path(workdir) / "export" / "model.keras", compile=False)
    return model.get_weights()
