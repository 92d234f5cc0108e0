"""Configs ship inside the package: found by name or path, from any directory, in the wheel."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from focal_dist import configs
from tests.training import runs

SHIPPED = ["csv", "default", "images", "multiclass", "multilabel", "parquet", "segmentation"]


def test_shipped_configs_are_listed_and_resolved_by_name_or_checkout_path(tmp_path, monkeypatch):
    assert configs.names() == SHIPPED
    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    for name in ("images", "images.py", "configs/images.py", "focal_dist/configs/images.py"):
        assert configs.path(name) == os.path.join(configs.DIRECTORY, "images.py")
    own = tmp_path / "images.py"
    own.write_text("def get_config():\n    return {'mine': True}\n")
    assert configs.path("images.py") == "images.py"  # an existing file wins
    assert configs.get_config("csv").data.source == "csv"
    assert configs.get_config("images").model.name == "cnn"


@pytest.mark.parametrize("name", ["nope", "configs/nope.py", "elsewhere/images.py"])
def test_unknown_config_is_an_error_naming_it_and_the_shipped_ones(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ValueError,
        match=rf"config '{name}': no such file, and not a shipped "
        r"config \(one of csv, default, images, multiclass, multilabel, parquet",
    ):
        configs.path(name)


def test_checkout_configs_folder_is_the_packaged_one():
    root = runs.ROOT
    assert (root / "configs").resolve() == (root / "focal_dist" / "configs").resolve()


@pytest.mark.slow
def test_wheel_ships_the_configs_and_they_load_from_the_installed_copy(tmp_path):
    source = tmp_path / "source"
    for part in ("focal_dist", "setup.cfg", "pyproject.toml", "README.md"):
        origin = runs.ROOT / part
        if origin.is_dir():
            shutil.copytree(origin, source / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(origin, source / part)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = (tmp_path / "dist").glob("focal_dist-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in SHIPPED:
        assert f"focal_dist/configs/{name}.py" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = (
        "from focal_dist import configs\n"
        "print(configs.path('configs/csv.py'))\n"
        "print(configs.get_config('images').data.source)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**runs.env(), "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    path, source_name = result.stdout.split()
    assert Path(path) == site / "focal_dist" / "configs" / "csv.py"
    assert source_name == "image_folder"
