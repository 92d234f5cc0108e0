"""`python -m focal_dist.predict` on a folder where some images cannot be decoded, as a
user meets it: a truncated PNG, a text file named .png and a 0-byte JPEG among 32 good
images. The bad ones are listed with the decoder's reason, every good one is scored
exactly once (one process, or two Horovod ranks with bad files on both), the exit
status says so in one line, and after a repair the same command scores only what is
missing."""

import csv
import json
import re
from pathlib import Path

import pytest

from tests.data import image_fixtures as fx
from tests.training import runs

pytestmark = pytest.mark.slow

NUM_GOOD = 32
# The bad files, named to fall between the good ones of the sorted listing (and, for two
# ranks, on both), with the reason each must be listed with.
BAD = {
    "08_truncated.png": r"^Invalid PNG data, size \d+$",
    "20_text.png": r"^not a JPEG, PNG, GIF or BMP image$",
    "25_empty.jpg": r"^not a JPEG, PNG, GIF or BMP image$",
}
TRAIN = {"task.name": "binary", "task.num_classes": 1, **fx.TINY_IMAGES}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict_images")
    train = fx.write_image_folder(root / "train", counts=(6, 4), names=("benign", "lesion"))
    overrides = {**TRAIN, "data.path": train}
    runs.run(runs.train_command("default", root / "run", overrides, config="configs/images.py"))
    return root / "run"


def _folder(directory: Path) -> Path:
    """directory/: NUM_GOOD images, PNG and JPEG, of three sizes, and the BAD files."""
    directory.mkdir()
    for i, image in enumerate(fx.images(NUM_GOOD, seed=5)):
        fmt = ("png", "jpeg")[i % 2]
        (directory / f"{i:02d}.{'png' if fmt == 'png' else 'jpg'}").write_bytes(
            fx.encode(image, fmt)
        )
    png = (directory / "00.png").read_bytes()
    (directory / "08_truncated.png").write_bytes(png[: len(png) // 2])
    (directory / "20_text.png").write_text("patient,score\n17,0.4\n")
    (directory / "25_empty.jpg").write_bytes(b"")
    return directory


def _predict(distribution, workdir, data, output, *extra):
    args = ["-m", "focal_dist.predict", f"--workdir={workdir}", f"--data={data}"]
    return runs.run(
        runs.distributed_command(distribution, [*args, f"--output={output}", *extra]),
        check=False,
    )


def _scored_files(output: Path) -> list[str]:
    files = []
    for part in sorted(output.glob("part-*.csv")):
        with open(part) as handle:
            files += [row["file"] for row in csv.DictReader(handle)]
    return files


def _check_failed(output: Path, names) -> None:
    failed = json.loads((output / "prediction.json").read_text())["failed"]
    assert [Path(row["file"]).name for row in failed] == sorted(names)
    for row in failed:
        assert row["row"] == 0
        assert re.match(BAD[Path(row["file"]).name], row["reason"]), row


def _decoded_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "could not be decoded" in line]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_undecodable_images_are_listed_with_their_reason_and_each_good_one_scored_once(
    workdir, tmp_path
):
    new = _folder(tmp_path / "new")
    good = sorted(str(p) for p in new.iterdir() if p.name not in BAD)
    output = tmp_path / "scores"
    result = _predict("default", workdir, new, output)
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    line = _decoded_line(result.stderr)
    assert "3 input(s) could not be decoded" in line
    assert str(output / "prediction.json") in line
    assert sorted(_scored_files(output)) == good
    _check_failed(output, BAD)
    manifest = json.loads((output / "prediction.json").read_text())
    assert manifest["rows"] == NUM_GOOD

    # The user replaces the truncated file and reruns the same command, accepting what
    # still fails: only the repaired image is scored, the first run's parts stay as they are.
    first = {part.name: part.read_bytes() for part in output.glob("part-*.csv")}
    (new / "08_truncated.png").write_bytes((new / "00.png").read_bytes())
    result = _predict("default", workdir, new, output, "--allow_failed_inputs")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "2 input(s) could not be decoded" in _decoded_line(result.stderr)
    assert {name: (output / name).read_bytes() for name in first} == first
    scored = _scored_files(output)
    assert sorted(scored) == sorted([*good, str(new / "08_truncated.png")])
    _check_failed(output, ["20_text.png", "25_empty.jpg"])
    assert json.loads((output / "prediction.json").read_text())["rows"] == NUM_GOOD + 1


def test_two_horovod_ranks_list_the_bad_images_of_both_and_score_each_good_one_once(
    workdir, tmp_path
):
    new = _folder(tmp_path / "new")
    listing = sorted(str(p) for p in new.iterdir())
    assert {listing.index(str(new / name)) % 2 for name in BAD} == {0, 1}  # on both ranks
    output = tmp_path / "scores"
    result = _predict("horovod", workdir, new, output)
    # horovodrun ends with its own RuntimeError for any rank's non-zero status; the
    # ranks' own output (lines "[rank]<stderr>:") holds no traceback.
    assert result.returncode != 0
    assert "Exit code: 3" in result.stderr
    log = result.stdout + result.stderr
    ranks = [line for line in log.splitlines() if re.match(r"\[\d\]<", line)]
    assert ranks, log[-3000:]
    assert not [line for line in ranks if "Traceback" in line]
    assert "3 input(s) could not be decoded" in _decoded_line(log)
    assert sorted(_scored_files(output)) == [f for f in listing if Path(f).name not in BAD]
    _check_failed(output, BAD)
    assert sorted(p.name for p in output.glob("failed-*.json")) == [
        "failed-00000-of-00002.json",
        "failed-00001-of-00002.json",
    ]
