"""The training CLI's user errors are one line, as a user meets them: an unknown config
key (with its "did you mean"), a work dir that cannot be created or written, a full disk
at export (the half-written copy removed, a rerun finishes the export). Each runs as a
subprocess; stderr must hold no traceback and must name the key or the path."""

import os
import subprocess

import pytest

from tests.training import runs

pytestmark = pytest.mark.slow


def _no_traceback(result):
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def test_an_unknown_config_key_is_one_line_with_did_you_mean(tmp_path):
    command = runs.train_command("default", tmp_path / "run", {"train.stepz": 5})
    result = runs.run(command, check=False)
    assert result.returncode == 2
    _no_traceback(result)
    assert '--config.train.stepz=5: no such config field (Did you mean "steps"?)' in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_config_value_of_the_wrong_type_is_one_line_naming_it(tmp_path):
    result = runs.run(
        runs.train_command("default", tmp_path / "run", {"train.steps": "abc"}), check=False
    )
    assert result.returncode == 2
    _no_traceback(result)
    assert "--config.train.steps=abc" in result.stderr


def test_a_work_dir_that_cannot_be_created_is_one_line_naming_it(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    workdir = blocker / "run"
    result = runs.run(runs.train_command("default", workdir, runs.TINY), check=False)
    assert result.returncode == 1
    _no_traceback(result)
    assert f"--workdir {workdir} cannot be created or written (Not a directory)" in result.stderr


def _mount(path, options):
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs and needs root (make test runs as root)")
    path.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)


def test_a_read_only_work_dir_is_one_line_naming_it(tmp_path):
    mount = tmp_path / "ro"
    _mount(mount, "size=1m,ro")
    try:
        result = runs.run(runs.train_command("default", mount / "run", runs.TINY), check=False)
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert result.returncode == 1
    _no_traceback(result)
    assert f"--workdir {mount / 'run'} cannot be created or written (Read-only" in result.stderr


def test_a_full_disk_at_export_is_one_line_removes_the_partial_copy_and_a_rerun_exports(
    tmp_path,
):
    mount = tmp_path / "small"
    # The checkpoint (model and Adam slots, 4.6 MB) and model.keras (1.6 MB) fit, the
    # SavedModel (3.1 MB) does not.
    _mount(mount, "size=7500k")
    try:
        workdir = mount / "run"
        overrides = {
            **runs.TINY,
            "train.steps": 10,
            "train.checkpoint_every": 10,
            "model.hidden_units": "(512, 512)",
            "data.num_features": 256,
            "data.synthetic.num_train": 512,
            "data.synthetic.num_eval": 64,
            "data.synthetic.num_calibration": 256,
        }
        result = runs.run(runs.train_command("default", workdir, overrides), check=False)
        assert result.returncode == 1, result.stderr[-3000:]
        _no_traceback(result)
        assert "no space left on the device of" in result.stderr
        assert f"{workdir}/export" in result.stderr
        assert not list(workdir.rglob("*.partial")), list(workdir.rglob("*"))
        assert (workdir / "checkpoints" / "ckpt-10.index").exists()
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
        rerun = runs.run(runs.train_command("default", workdir, overrides))
        assert "resumed from" in rerun.stderr
        assert runs.summary(workdir)["step"] == 10
        assert (workdir / "export" / "saved_model" / "saved_model.pb").exists()
    finally:
        subprocess.run(["umount", str(mount)], check=True)
