"""Calling SavedModel signatures as TF Serving would: a fresh process with TensorFlow
alone (load_saved_model.py), where keras, tf_keras and focal_dist fail on import."""

import json
import os
import subprocess
import sys
from pathlib import Path

LOADER = Path(__file__).with_name("load_saved_model.py")


def serve(root: Path, jobs: list[dict]) -> list[str]:
    """Runs every job (see load_saved_model.py); returns the modules of focal_dist, keras
    or tf_keras that the process imported (none, when serving needs TensorFlow only)."""
    (root / "jobs.json").write_text(json.dumps(jobs))
    # TensorFlow imports Keras when it can; packages that raise on import make sure the
    # SavedModel serves without Keras or focal_dist, as in TF Serving.
    blocked = root / "blocked"
    for package in ("keras", "tf_keras", "focal_dist"):
        (blocked / package).mkdir(parents=True, exist_ok=True)
        (blocked / package / "__init__.py").write_text(f"raise ImportError('no {package} here')\n")
    env = dict(os.environ, PYTHONPATH=str(blocked))
    result = subprocess.run(
        [sys.executable, str(LOADER), str(root / "jobs.json")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((root / "jobs.json.modules.json").read_text())["modules"]


def saved_model_cli_show(directory) -> str:
    """`saved_model_cli show --all --dir directory`, as a deployer inspects an export:
    its output, after asserting that it exited 0."""
    shown = subprocess.run(
        [
            str(Path(sys.executable).parent / "saved_model_cli"),
            "show",
            "--all",
            "--dir",
            str(directory),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    return shown.stdout
