"""A work dir holds one experiment: a rerun with a config that changes the math is
refused before anything is written, under every distribution, and every process that
trained is recorded with the changes accepted at its start."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from focal_dist.training import run_record
from tests.training import runs

TINY = {
    **runs.TINY,
    "train.steps": 40,
    "train.steps_per_loop": 10,
    "train.checkpoint_every": 20,
    "train.log_every": 20,
}


def _snapshot(workdir: Path) -> dict:
    return {
        str(p.relative_to(workdir)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(workdir.rglob("*"))
        if p.is_file()
    }


def test_math_fields_are_refused_and_cadence_fields_resume():
    old = {"train": {"steps": 40, "log_every": 20}, "optimizer": {"learning_rate": 0.003}}
    new = {"train": {"steps": 40, "log_every": 5}, "optimizer": {"learning_rate": 0.01}}
    changed = run_record.changes(old, new)
    assert changed == {
        "optimizer.learning_rate": (0.003, 0.01),
        "train.log_every": (20, 5),
    }
    assert set(run_record._refused(changed, new, set())) == {"optimizer.learning_rate"}
    assert run_record._refused(changed, new, {"optimizer.learning_rate"}) == {}


def test_total_steps_may_follow_train_steps_only_under_a_constant_rate():
    changed = {"train.steps": (40, 80), "optimizer.total_steps": (40, 80)}
    cosine = {"optimizer": {"decay": "cosine"}}
    constant = {"optimizer": {"decay": "constant"}}
    why = run_record._refused(changed, cosine, set())
    assert list(why) == ["optimizer.total_steps"]
    assert "cosine schedule decays to 0" in why["optimizer.total_steps"]
    assert run_record._refused(changed, constant, set()) == {}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("finished")
    runs.run(runs.train_command("default", workdir, TINY))
    return workdir


@pytest.mark.slow
def test_a_rerun_changing_gamma_rate_and_batch_is_refused_naming_each_and_writes_nothing(
    finished,
):
    before = _snapshot(finished)
    changed = {
        **TINY,
        "loss.gamma": 0.0,
        "optimizer.learning_rate": 0.1,
        "train.global_batch_size": 32,
    }
    result = runs.run(runs.train_command("default", finished, changed), check=False)
    assert result.returncode == 1, result.stderr[-2000:]
    for line in (
        "loss.gamma: 2.0 -> 0.0",
        "optimizer.learning_rate: 0.003 -> 0.1",
        "train.global_batch_size: 64 -> 32",
    ):
        assert line in result.stderr, result.stderr[-2000:]
    assert "--allow_config_change=loss.gamma,optimizer.learning_rate" in result.stderr
    assert "Traceback" not in result.stderr
    assert "run already complete" not in result.stderr
    assert _snapshot(finished) == before


@pytest.mark.slow
@pytest.mark.parametrize("distribution", ["mirrored", "multiworker", "horovod"])
def test_every_worker_refuses_a_changed_learning_rate_and_none_hangs(distribution, finished):
    before = _snapshot(finished)
    changed = {**TINY, "optimizer.learning_rate": 0.01}
    start = time.monotonic()
    result = runs.run(runs.train_command(distribution, finished, changed), check=False, timeout=300)
    assert result.returncode != 0
    assert "optimizer.learning_rate: 0.003 -> 0.01" in result.stderr + result.stdout
    assert time.monotonic() - start < 240
    assert _snapshot(finished) == before


@pytest.mark.slow
def test_sigterm_then_a_resume_with_accepted_changes_is_recorded_segment_by_segment(tmp_path):
    slow = {**TINY, "train.steps": 20000, "optimizer.decay": "constant"}
    # The log goes to a file: a pipe nobody reads fills and blocks the run mid-step.
    log = (tmp_path.parent / "first_segment.log").open("w")
    process = subprocess.Popen(
        runs.train_command("default", tmp_path, slow),
        cwd=runs.ROOT,
        env=runs.env(),
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    deadline = time.monotonic() + 300
    # Any kept checkpoint will do: the run is fast and keeps only the newest few.
    while not list((tmp_path / "checkpoints").glob("ckpt-*.index")):
        assert process.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 143
    stopped_at = runs.summary(tmp_path)["step"]
    resumed = {**slow, "train.steps": stopped_at + 20, "train.log_every": 7}
    resumed["optimizer.learning_rate"] = 0.001
    command = runs.train_command("default", tmp_path, resumed)
    result = runs.run(command, check=False)
    assert result.returncode == 1
    assert "optimizer.learning_rate: 0.003 -> 0.001" in result.stderr
    runs.run([*command, "--allow_config_change=optimizer.learning_rate"])
    summary = runs.summary(tmp_path)
    first, second = summary["segments"]
    assert (first["start_step"], first["ended"]) == (0, "sigterm")
    assert first["end_step"] == first["saved_step"] == stopped_at
    assert (second["start_step"], second["ended"]) == (stopped_at, "finished")
    assert second["end_step"] == second["saved_step"] == stopped_at + 20
    assert second["config_changes"] == {
        "optimizer.learning_rate": [0.003, 0.001],
        "optimizer.total_steps": [20000, stopped_at + 20],
        "train.log_every": [20, 7],
        "train.steps": [20000, stopped_at + 20],
    }
    assert json.loads((tmp_path / "config.json").read_text())["optimizer"]["learning_rate"] == 0.001
    # TensorBoard's text tab shows the record as it stood when the second process started.
    from tensorboard.backend.event_processing import event_accumulator

    events = event_accumulator.EventAccumulator(
        str(tmp_path / "tensorboard"), size_guidance={"tensors": 0}
    )
    events.Reload()
    table = events.Tensors("run/segments")[-1].tensor_proto.string_val[0].decode()
    assert "sigterm" in table
    assert "optimizer.learning_rate: 0.003 -> 0.001" in table
