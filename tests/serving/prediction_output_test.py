"""The --output directory of a batch prediction, in one process: claimed by one
prediction, resumed by the same one (whatever its work dir's path, data spelling or
worker count), refused to another model, source or file list with what differs, parts
committed whole and numbered on from an earlier attempt's, failed rows kept apart."""

import json
import shutil

import numpy as np
import pytest

from focal_dist.serving import prediction_output as out


@pytest.fixture
def export(tmp_path):
    workdir = tmp_path / "run"
    (workdir / "export").mkdir(parents=True)
    (workdir / "export" / "deploy.json").write_text('{"label_mode": "binary"}')
    (workdir / "export" / "model.keras").write_bytes(b"weights v1")
    return workdir


def _run(workdir, files=("/data/a.png", "/data/b.png"), source="image_folder", data="/data"):
    return out.identity(workdir=str(workdir), data=data, source=source, files=list(files))


def test_the_same_prediction_resumes_and_any_other_is_refused_naming_what_differs(export, tmp_path):
    output = tmp_path / "scores"
    assert out.claim(str(output), _run(export)) is False
    record = json.loads((output / out.STARTED).read_text())
    assert record["files"] == ["/data/a.png", "/data/b.png"]
    # A moved work dir and another spelling of the same files are the same prediction.
    moved = tmp_path / "moved"
    shutil.copytree(export, moved)
    assert out.claim(str(output), _run(moved, files=["/data/b.png", "/data/a.png"], data="/d*"))

    (moved / "export" / "model.keras").write_bytes(b"weights v2")
    with pytest.raises(out.OutputError, match=r"prediction \(another model: .*moved/export"):
        out.claim(str(output), _run(moved))
    with pytest.raises(out.OutputError, match="another source: image_tfrecord, not image_folder"):
        out.claim(str(output), _run(export, source="image_tfrecord"))
    files = ["/data/b.png", *(f"/data/new{i}.png" for i in range(7))]
    with pytest.raises(
        out.OutputError,
        match=r"other input files: 7 added \(/data/new0.png, .*, /data/new4.png and 2 more\), "
        r"1 removed \(/data/a.png\)\)",
    ):
        out.claim(str(output), _run(export, files=files))
    # The same files named another way (rows are kept by the name they were scored under).
    with pytest.raises(
        out.OutputError,
        match=r"the same input files spelled another way: --data=/data/./ names "
        r"/data/./a.png, the prediction started with --data=/data \(/data/a.png\); "
        r"rerun with --data=/data",
    ):
        out.claim(
            str(output), _run(export, files=["/data/./a.png", "/data/./b.png"], data="/data/./")
        )
    assert sorted(p.name for p in output.iterdir()) == [out.STARTED]


def test_a_manifest_with_failed_rows_is_resumed_and_one_without_is_finished(export, tmp_path):
    output = tmp_path / "scores"
    out.claim(str(output), _run(export))
    (output / "part-00000-of-00001-00000.csv").write_text("file,row\n/data/a.png,0\n")
    (output / "failed-00000-of-00001.json").write_text('[{"file": "/data/b.png"}]')
    (output / ".part-00001-of-00002.partial").write_text("file,row\n/data/b.pn")
    out.write_manifest(str(output), {"rows": 1, "failed": [{"file": "/data/b.png"}]})
    assert out.claim(str(output), _run(export)) is True
    # What the new attempt rewrites is gone; the committed part stays.
    assert sorted(p.name for p in output.iterdir()) == [
        "part-00000-of-00001-00000.csv",
        out.STARTED,
    ]
    out.write_manifest(str(output), {"rows": 2, "failed": []})
    with pytest.raises(out.OutputError, match="holds a finished prediction"):
        out.claim(str(output), _run(export))


class _Rows(out.PartWriter):
    def write(self, outputs):
        self._writer.writerows(zip(outputs["file"], outputs["row"], strict=True))


def _batch(files, errors=None):
    batch = {"file": np.array(files, object), "row": np.zeros(len(files), np.int64)}
    if errors is not None:
        batch["error"] = np.array(errors, object)
    return batch


def test_parts_are_committed_whole_numbered_on_and_failed_rows_listed_apart(tmp_path):
    (tmp_path / "part-00001-of-00002-00003.csv").write_text("file,row\nearlier,0\n")
    writer = _Rows(str(tmp_path), 1, 2, [], commit_seconds=0)
    writer.add(_batch(["a", "b", "c"], [b"", b"Invalid PNG data, size 9", b""]))
    writer.add(_batch(["d"], [b"not a JPEG, PNG, GIF or BMP image"]))  # nothing to commit
    writer.add(_batch(["e"]))
    assert writer.close() == [
        str(tmp_path / "part-00001-of-00002-00004.csv"),
        str(tmp_path / "part-00001-of-00002-00005.csv"),
    ]
    scored, counts = out.read_parts(str(tmp_path))
    assert counts == {
        "part-00001-of-00002-00003.csv": 1,
        "part-00001-of-00002-00004.csv": 2,
        "part-00001-of-00002-00005.csv": 1,
    }
    assert len(scored) == 4
    assert ("c", 0) in scored
    # Unix line ends, so that awk and cut read the last column as written.
    written = (tmp_path / "part-00001-of-00002-00004.csv").read_bytes()
    assert written.count(b"\n") == 3
    assert b"\r" not in written
    assert ("b", 0) not in scored
    assert writer.rows == 3
    assert out.read_failures(str(tmp_path)) == [
        {"file": "b", "row": 0, "reason": "Invalid PNG data, size 9"},
        {"file": "d", "row": 0, "reason": "not a JPEG, PNG, GIF or BMP image"},
    ]
    assert not list(tmp_path.glob(".part-*"))

    slow = _Rows(str(tmp_path), 0, 1, [], commit_seconds=3600)
    slow.add(_batch(["x"]))
    slow.add(_batch(["y"]))
    assert not list(tmp_path.glob("part-00000-*"))  # uncommitted rows are not a part yet
    slow.abandon()
    assert not list(tmp_path.glob("part-00000-*")) + list(tmp_path.glob(".part-*"))
