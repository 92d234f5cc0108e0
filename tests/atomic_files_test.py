"""replace_directory: the new tree replaces the old one whole, with or without renameat2."""

import pytest

from focal_dist import atomic_files


def _tree(path, text):
    path.mkdir()
    (path / "saved_model.pb").write_text(text)
    return path


@pytest.mark.parametrize("exchange", [True, False])
def test_replace_directory_leaves_only_the_new_tree(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(atomic_files, "_exchange", lambda first, second: False)
    target = tmp_path / "saved_model"
    atomic_files.replace_directory(str(_tree(tmp_path / "first", "1")), str(target))
    _tree(tmp_path / "saved_model.previous", "left by a kill between two renames")
    atomic_files.replace_directory(str(_tree(tmp_path / "second", "2")), str(target))
    assert (target / "saved_model.pb").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]


def test_renameat2_exchanges_two_directories_here(tmp_path):
    first, second = _tree(tmp_path / "a", "a"), _tree(tmp_path / "b", "b")
    assert atomic_files._exchange(str(first), str(second))
    assert (first / "saved_model.pb").read_text() == "b"
