"""Resume as clusters break runs: kill -9 of the whole process tree, then SIGTERM, then
the same command again, under every distribution, for generated, CSV and Parquet data.

The interrupted run must end with the weights and the per-step losses of an
uninterrupted one (1e-6), TensorBoard must show each step once and in order with the
run's hparams and label table written once, and rerunning the finished command must
touch nothing.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_file_loader, plugin_event_accumulator

from tests.training import runs
from tests.training.tensorboard_server import scalar_steps

pytestmark = pytest.mark.slow

STEPS, LOOP, EVERY = 600, 5, 100
TINY = {
    **runs.TINY,
    "train.steps": STEPS,
    "train.steps_per_loop": LOOP,
    "train.checkpoint_every": EVERY,
    "train.log_every": 100,
    "train.eval_every": 200,
    "train.keep_checkpoints": 3,
    "train.deterministic": True,
    "data.shuffle_buffer": 512,
    "data.synthetic.positive_rate": 0.05,
}
# kill -9 once TensorBoard holds steps past ckpt-100 (events TensorBoard must drop).
KILL_AFTER, ORPHANS_UNTIL, TERM_AFTER = 100, 115, 300


def _write_data(source: str, directory: Path) -> None:
    """1500 rows, 8 features, about 5% positives, as train.csv or train.parquet."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1500, 8)).round(4).astype(np.float32)
    labels = (features[:, 0] + 0.5 * rng.normal(size=1500) > 1.6).astype(np.int64)
    if source == "csv":
        rows = [",".join(["label", *(f"f{i}" for i in range(8))])]
        rows += [",".join([str(y), *map(str, x)]) for x, y in zip(features, labels, strict=True)]
        (directory / "train.csv").write_text("\n".join(rows) + "\n")
    elif source == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {"label": labels, **{f"f{i}": features[:, i] for i in range(8)}}
        pq.write_table(pa.table(columns), directory / "train.parquet", row_group_size=500)


def _command(distribution, workdir, source, data_dir):
    overrides = dict(TINY)
    config = "configs/default.py"
    if source != "synthetic":
        config = f"configs/{source}.py"
        overrides["data.path"] = str(data_dir / f"train.{source}")
    if distribution == "mirrored":
        return [
            *runs.train_command("default", workdir, overrides, config),
            "--distribution=mirrored",
            "--num_cpu_devices=2",
        ]
    return runs.train_command(distribution, workdir, overrides, config)


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _is_trainer(pid: int) -> bool:
    try:
        return b"focal_dist.train" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _start(command):
    return subprocess.Popen(
        command,
        cwd=runs.ROOT,
        env=runs.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_for_checkpoint(workdir: Path, step: int, process, timeout=300):
    index = workdir / "checkpoints" / f"ckpt-{step}.index"
    deadline = time.time() + timeout
    while not index.exists():
        assert process.poll() is None, f"the run ended before ckpt-{step}:\n{process.stdout.read()}"
        assert time.time() < deadline, f"ckpt-{step} never appeared"
        time.sleep(0.02)


def _logged_steps(workdir: Path, tag="train/loss") -> list[int]:
    """Steps of `tag` in the event files as written (no purge), file by file."""
    steps = []
    for path in sorted((workdir / "tensorboard").glob("events.out.tfevents.*")):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return steps


def _wait_for_logged_step(workdir: Path, step: int, process, timeout=300):
    deadline = time.time() + timeout
    while max(_logged_steps(workdir), default=0) < step:
        assert process.poll() is None, f"the run ended before logging step {step}"
        assert time.time() < deadline, f"step {step} never reached the event file"
        time.sleep(0.05)


def _kill_tree(process, sig) -> list[int]:
    """Sends `sig` to the whole process tree (SIGKILL) or to its trainers (SIGTERM)."""
    pids = _tree(process.pid)
    targets = pids if sig == signal.SIGKILL else [p for p in pids if _is_trainer(p)]
    for pid in targets:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return pids


def _wait_gone(pids, timeout=120):
    deadline = time.time() + timeout
    while any(Path(f"/proc/{pid}").exists() and _is_trainer(pid) for pid in pids):
        assert time.time() < deadline, "trainer processes survived the kill"
        time.sleep(0.1)


def _finish(command):
    return runs.run(command, timeout=900)


def _assert_continuous_tensorboard(workdir: Path) -> dict:
    """TensorBoard's own loader (the one its server uses with --load_fast=false): every
    tag's steps strictly increase; once-per-run records appear once."""
    events = plugin_event_accumulator.EventAccumulator(
        str(workdir / "tensorboard"), size_guidance={"tensors": 0}, purge_orphaned_data=True
    )
    events.Reload()
    counts = {}
    for tag in events.Tags()["tensors"]:
        steps = [event.step for event in events.Tensors(tag)]
        assert steps == sorted(set(steps)), (tag, steps)
        counts[tag] = len(steps)
    expected = list(range(LOOP, STEPS + 1, LOOP))
    assert [e.step for e in events.Tensors("train/loss")] == expected
    assert counts["data/label_histogram"] == 1
    hparams = events.PluginTagToContent("hparams")
    assert hparams
    for tag in hparams:
        assert counts[tag] == 1, (tag, counts[tag])
    return counts


# Every distribution once: multiworker on files, where its two pipelines each skip their
# own share (csv); files under one pipeline (parquet).
CASES = [
    ("default", "synthetic"),
    ("mirrored", "synthetic"),
    ("horovod", "synthetic"),
    ("multiworker", "csv"),
    ("default", "parquet"),
]


@pytest.mark.parametrize(("distribution", "source"), CASES)
def test_kill_9_then_sigterm_then_rerun_ends_like_an_uninterrupted_run(
    tmp_path, distribution, source
):
    _write_data(source, tmp_path)
    reference = tmp_path / "uninterrupted"
    # The uninterrupted run goes alongside the interrupted one (wall time).
    uninterrupted = subprocess.Popen(
        _command(distribution, reference, source, tmp_path),
        cwd=runs.ROOT,
        env=runs.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    workdir = tmp_path / "interrupted"
    command = _command(distribution, workdir, source, tmp_path)

    process = _start(command)
    _wait_for_checkpoint(workdir, KILL_AFTER, process)
    _wait_for_logged_step(workdir, ORPHANS_UNTIL, process)
    pids = _kill_tree(process, signal.SIGKILL)
    process.wait()
    _wait_gone(pids)
    assert not (workdir / "summary.json").exists()

    process = _start(command)
    _wait_for_checkpoint(workdir, TERM_AFTER, process)
    pids = _kill_tree(process, signal.SIGTERM)
    output, _ = process.communicate(timeout=300)
    _wait_gone(pids)
    # The trainers exit 143 (retryable); launchers pass a failure on.
    assert process.returncode == 143 or (
        distribution in ("multiworker", "horovod") and process.returncode != 0
    ), output[-3000:]
    assert "stopped by SIGTERM at step" in output, output[-3000:]
    stopped = runs.summary(workdir)
    assert stopped["preempted"] is True
    assert stopped["complete"] is False

    result = _finish(command)
    assert "resumed from" in result.stderr + result.stdout
    output, _ = uninterrupted.communicate(timeout=900)
    assert uninterrupted.returncode == 0, output[-3000:]
    ours, theirs = runs.summary(workdir), runs.summary(reference)
    assert ours["step"] == STEPS
    np.testing.assert_allclose(ours["train_losses"], theirs["train_losses"], rtol=1e-6)
    differences = [
        float(np.max(np.abs(a - b)))
        for a, b in zip(runs.final_weights(workdir), runs.final_weights(reference), strict=True)
    ]
    print(f"{distribution}/{source}: max |weight difference| {max(differences):.3g}")
    for a, b in zip(runs.final_weights(workdir), runs.final_weights(reference), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    logged = _logged_steps(workdir)
    orphans = len(logged) - len(set(logged))
    # The killed process had logged steps past its checkpoint, written again after resume.
    assert orphans > 0, logged
    print(
        f"{distribution}/{source}: {len(logged)} train/loss events in the files, {orphans} orphans"
    )
    counts = _assert_continuous_tensorboard(workdir)
    print(f"{distribution}/{source}: TensorBoard events per tag {counts}")
    if distribution == "default" and source == "synthetic":
        for loader in ("auto", "false"):
            steps = scalar_steps(workdir / "tensorboard", "train/loss", load_fast=loader)
            assert steps == list(range(LOOP, STEPS + 1, LOOP)), (loader, steps)

    # A finished command, rerun: exits 0 at once and touches nothing.
    before = _snapshot(workdir)
    rerun = runs.run(command)
    assert "already complete" in rerun.stderr + rerun.stdout
    assert _snapshot(workdir) == before


def _snapshot(workdir: Path) -> dict:
    return {
        str(path.relative_to(workdir)): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(workdir.rglob("*"))
        if path.is_file()
    }
