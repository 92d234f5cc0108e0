"""A damaged work dir never costs progress silently, as a user meets it through the CLI:
a lost `.index` of the newest checkpoint is named and the step used instead is said; with
no usable checkpoint left over recorded progress, every worker stops with one line (no
traceback, no hang of the other rank) until `--restart` asks for step 0 on purpose."""

import os

import pytest

from tests.training import runs

pytestmark = pytest.mark.slow

# A constant learning rate, so that raising train.steps continues the run.
OVERRIDES = {
    **runs.TINY,
    "train.steps": 20,
    "train.checkpoint_every": 10,
    "train.steps_per_loop": 10,
    "optimizer.decay": "constant",
    "optimizer.warmup_steps": 0,
}


@pytest.mark.parametrize("distribution", ["default", "horovod"])
def test_lost_index_files_are_named_and_progress_is_never_silently_restarted(
    tmp_path, distribution
):
    workdir = tmp_path / "run"
    checkpoints = workdir / "checkpoints"
    runs.run(runs.train_command(distribution, workdir, OVERRIDES))
    assert sorted(p.name for p in checkpoints.glob("*.index")) == ["ckpt-10.index", "ckpt-20.index"]

    # The newest checkpoint's index is lost: the run resumes from step 10 and says so.
    os.remove(checkpoints / "ckpt-20.index")
    longer = {**OVERRIDES, "train.steps": 30}
    resumed = runs.run(runs.train_command(distribution, workdir, longer))
    assert f"{checkpoints / 'ckpt-20'}.index is missing" in resumed.stderr
    assert "resuming from step 10" in resumed.stderr
    assert runs.summary(workdir)["resumed_from_step"] == 10
    assert runs.summary(workdir)["step"] == 30
    assert (checkpoints / "rejected" / "ckpt-20.data-00000-of-00001").exists()

    # Every index lost: the run records 30 steps, so it stops, names what it found and
    # keeps the files; no process is left behind and no traceback is printed.
    for index in checkpoints.glob("ckpt-*.index"):
        os.remove(index)
    even_longer = {**OVERRIDES, "train.steps": 40}
    refused = runs.run(runs.train_command(distribution, workdir, even_longer), check=False)
    assert refused.returncode != 0, refused.stderr[-3000:]
    # horovodrun ends with a traceback of its own when a rank fails; none is the ranks'.
    tracebacks = refused.stderr.split("Traceback (most recent call last):")[1:]
    assert all("bin/horovodrun" in t.splitlines()[1] for t in tracebacks), refused.stderr[-3000:]
    assert len(tracebacks) <= (distribution == "horovod")
    assert "records training up to step 30" in refused.stderr
    assert str(checkpoints / "ckpt-30") in refused.stderr
    assert "--restart" in refused.stderr
    assert runs.summary(workdir)["step"] == 30  # summary.json untouched
    assert (checkpoints / "rejected" / "ckpt-30.data-00000-of-00001").exists()

    # --restart trains from step 0 on purpose.
    restarted = runs.run([*runs.train_command(distribution, workdir, even_longer), "--restart"])
    assert "--restart: no usable checkpoint" in restarted.stderr
    assert runs.summary(workdir)["resumed_from_step"] == 0
    assert runs.summary(workdir)["step"] == 40
