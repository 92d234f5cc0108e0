"""`python -m focal_dist.predict` as a batch job meets it: uneven CSV files scored under
default, mirrored, multiworker and horovod, every row exactly once, each score equal to
the exported model plus calibration and threshold; bad input named before any part; a
prediction killed mid-way resumed by the same command on another number of workers."""

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.training import runs

pytestmark = pytest.mark.slow

FILES = {"a": 777, "b": 5, "c": 1, "d": 130}  # uneven


def _write(path: Path, rows: int, seed: int, *, nan_row=None, columns=("f0", "f1", "f2", "f3")):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4)).round(4)
    y = (x[:, 0] + 0.5 * rng.normal(size=rows) > 1.5).astype(int)
    lines = [",".join(["label", *columns])]
    for i, (label, values) in enumerate(zip(y, x, strict=True)):
        text = [str(v) for v in values]
        if i == nan_row:
            text[2] = "nan"
        lines.append(",".join([str(label), *text]))
    path.write_text("\n".join(lines) + "\n")
    return x


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    _write(root / "train.csv", 3000, 0)
    _write(root / "calibration.csv", 1000, 1)
    workdir = root / "run"
    overrides = {
        "data.path": root / "train.csv",
        "data.calibration_path": root / "calibration.csv",
        "train.steps": 60,
        "train.eval_every": 0,
        "train.checkpoint_every": 60,
    }
    runs.run(runs.train_command("default", workdir, overrides, config="configs/csv.py"))
    new = root / "new"
    new.mkdir()
    features = {
        name: _write(new / f"{name}.csv", rows, 10 + i)
        for i, (name, rows) in enumerate(FILES.items())
    }
    return root, workdir, features


def _expected(workdir: Path, features: dict):
    import keras

    deploy = json.loads((workdir / "export" / "deploy.json").read_text())
    model = keras.models.load_model(workdir / "export" / "model.keras", compile=False)
    (scale,), (offset,) = deploy["calibration"]["scale"], deploy["calibration"]["offset"]
    (threshold,) = deploy["decision"]["thresholds"]
    expected = {}
    for name, x in features.items():
        if len(x) == 0:
            continue
        logits = model(x.astype(np.float32)).numpy()[:, 0].astype(np.float64)
        probability = 1 / (1 + np.exp(-(scale * logits + offset)))
        for row, p in enumerate(probability):
            expected[(name, row)] = p
    return expected, threshold


def _predict(distribution, workdir, data, output, check=True, extra=()):
    args = [
        "-m",
        "focal_dist.predict",
        f"--workdir={workdir}",
        f"--data={data}",
        f"--output={output}",
        *extra,
    ]
    command = runs.distributed_command(distribution, args)
    if distribution == "mirrored":
        command += ["--distribution=mirrored", "--num_cpu_devices=3"]
    return runs.run(command, check=check)


def _read_parts(output: Path) -> list[tuple]:
    rows = []
    for part in sorted(output.glob("part-*.csv")):
        with open(part) as handle:
            for record in csv.DictReader(handle):
                rows.append(
                    (
                        Path(record["file"]).stem,
                        int(record["row"]),
                        float(record["probability"]),
                        int(record["decision"]),
                    )
                )
    return rows


@pytest.mark.parametrize("distribution", ["default", "mirrored", "multiworker", "horovod"])
def test_every_row_is_scored_once_with_the_exported_calibration(distribution, trained, tmp_path):
    root, workdir, features = trained
    output = tmp_path / "scores"
    result = _predict(distribution, workdir, root / "new" / "*.csv", output)
    assert "rows/s" in result.stderr + result.stdout  # the launcher merges the logs
    rows = _read_parts(output)
    keys = [(name, row) for name, row, _, _ in rows]
    assert len(keys) == len(set(keys)) == sum(FILES.values())
    expected, threshold = _expected(workdir, features)
    assert set(keys) == set(expected)
    for name, row, probability, decision in rows:
        assert probability == pytest.approx(expected[(name, row)], abs=1e-6)
        if abs(expected[(name, row)] - threshold) > 1e-6:
            assert decision == int(expected[(name, row)] >= threshold)
    manifest = json.loads((output / "prediction.json").read_text())
    assert manifest["rows"] == sum(FILES.values())
    workers = {"default": 1, "mirrored": 1, "multiworker": 2, "horovod": 2}[distribution]
    assert len(manifest["parts"]) == len(list(output.glob("part-*.csv"))) == workers


def test_the_predict_function_scores_like_the_cli_in_a_users_own_program(trained, tmp_path):
    from focal_dist.distribute import get_backend
    from focal_dist.serving.predict_run import predict
    from focal_dist.serving.prediction_output import OutputError

    root, workdir, features = trained
    output = tmp_path / "scores"
    result = predict(
        str(workdir), str(root / "new" / "*.csv"), str(output), backend=get_backend("default")
    )
    total = sum(FILES.values())
    assert (result.rows, result.failed, result.scored_now) == (total, 0, total)
    assert result.manifest == str(output / "prediction.json")
    expected, threshold = _expected(workdir, features)
    rows = _read_parts(output)
    assert sorted((name, row) for name, row, _, _ in rows) == sorted(expected)
    for name, row, probability, decision in rows:
        assert probability == pytest.approx(expected[(name, row)], abs=1e-6)
        if abs(expected[(name, row)] - threshold) > 1e-6:
            assert decision == int(expected[(name, row)] >= threshold)
    # The same call again finds the prediction finished and refuses it, as the CLI does.
    with pytest.raises(OutputError, match="holds a finished prediction"):
        predict(
            str(workdir), str(root / "new" / "*.csv"), str(output), backend=get_backend("default")
        )


def test_another_prediction_or_a_finished_one_into_the_same_output_is_refused(trained, tmp_path):
    root, workdir, _ = trained
    output = tmp_path / "scores"
    _predict("default", workdir, root / "new" / "a.csv", output)
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    other = _predict("default", workdir, root / "new" / "b.csv", output, check=False)
    assert other.returncode == 1
    assert "holds a finished prediction" in other.stderr
    (output / "prediction.json").unlink()
    other = _predict("default", workdir, root / "new" / "b.csv", output, check=False)
    assert other.returncode == 1
    new = root / "new"
    assert (
        "already holds results of another prediction (other input files: "
        f"1 added ({new / 'b.csv'}), 1 removed ({new / 'a.csv'}))" in other.stderr
    ), other.stderr[-2000:]
    assert {p.name: p.read_bytes() for p in output.iterdir()} == {
        k: v for k, v in before.items() if k != "prediction.json"
    }


def _kill_after_the_first_part(command: list, output: Path, log: Path) -> None:
    """Starts `command` and kills it (-9, no clean-up) as soon as it has committed a part."""
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            command, cwd=runs.ROOT, env=runs.env(), stdout=subprocess.DEVNULL, stderr=stderr
        )
    deadline = time.monotonic() + 300
    while not list(output.glob("part-*.csv")):
        assert process.poll() is None, f"it ended before its first part: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, "no part within 300 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_a_killed_prediction_rerun_keeps_its_committed_rows_and_scores_each_other_row_once(
    trained, tmp_path
):
    # A pod killed mid-way, a part committed after every batch of 4 rows; the same
    # command, restarted on two Horovod ranks, resumes into the same output.
    root, workdir, _ = trained
    output = tmp_path / "scores"
    data = root / "new" / "*.csv"
    flags = [f"--workdir={workdir}", f"--data={data}", f"--output={output}", "--batch_size=4"]
    command = [sys.executable, "-m", "focal_dist.predict", *flags, "--commit_secs=0"]
    _kill_after_the_first_part(command, output, tmp_path / "killed.log")
    kept = {part.name: part.read_bytes() for part in output.glob("part-*.csv")}
    before = sum(len(text.splitlines()) - 1 for text in kept.values())
    assert 0 < before < sum(FILES.values())
    assert not (output / "prediction.json").exists()

    result = _predict("horovod", workdir, data, output, extra=["--batch_size=4"])
    log = result.stderr + result.stdout
    assert "resuming the prediction" in log
    assert f"{before} rows scored by an earlier attempt are kept" in log
    assert {name: (output / name).read_bytes() for name in kept} == kept
    rows = _read_parts(output)
    keys = [(name, row) for name, row, _, _ in rows]
    assert len(keys) == len(set(keys)) == sum(FILES.values())
    new_parts = [part for part in output.glob("part-*.csv") if part.name not in kept]
    assert sum(len(part.read_text().splitlines()) - 1 for part in new_parts) == len(keys) - before
    manifest = json.loads((output / "prediction.json").read_text())
    assert manifest["rows"] == sum(FILES.values())
    assert manifest["failed"] == []
    assert sorted(manifest["parts"]) == sorted(p.name for p in output.glob("part-*.csv"))
    assert not list(output.glob(".part-*"))


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("no_export", "is not a finished training run"),
        ("columns", r"has feature columns \['g0', 'g1', 'g2', 'g3'\]; the model was trained on"),
        ("nan", r"bad.csv, column f2, row 3"),
    ],
)
def test_bad_input_is_named_before_any_part_is_written(problem, message, trained, tmp_path):
    root, workdir, _ = trained
    data = tmp_path / "bad.csv"
    if problem == "columns":
        _write(data, 20, 3, columns=("g0", "g1", "g2", "g3"))
    else:
        _write(data, 20, 3, nan_row=3 if problem == "nan" else None)
    if problem == "no_export":
        workdir = tmp_path / "empty_run"
        workdir.mkdir()
    output = tmp_path / "scores"
    result = _predict("default", workdir, data, output, check=False)
    assert result.returncode == 1, result.stderr[-2000:]
    assert re.search(message, result.stderr), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not list(output.glob("part-*")) + list(output.glob(".part-*"))
