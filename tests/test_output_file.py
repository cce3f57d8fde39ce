"""``removing_new_folders``: the folders a command created for its outputs do not outlive its failure."""

from __future__ import annotations

import pytest

from avemo.errors import AvemoError
from avemo.output_file import prepare_folder, removing_new_folders


@pytest.mark.parametrize("stop", [AvemoError("refused"), KeyboardInterrupt()])
def test_the_folders_created_are_removed_when_the_body_fails(tmp_path, stop):
    out = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(type(stop)), removing_new_folders(out):
        prepare_folder(out)
        raise stop
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_was_there_stays(tmp_path):
    there = tmp_path / "there"
    there.mkdir()
    with pytest.raises(AvemoError), removing_new_folders(there / "out"):
        prepare_folder(there / "out")
        raise AvemoError("refused")
    assert there.is_dir() and list(there.iterdir()) == []


def test_a_folder_with_something_in_it_stays_and_so_do_its_parents(tmp_path):
    out = tmp_path / "new" / "out"
    with pytest.raises(AvemoError), removing_new_folders(out):
        prepare_folder(out)
        (out / "history.csv").write_text("epoch\n")
        raise AvemoError("failed after the first epoch")
    assert [p.name for p in out.iterdir()] == ["history.csv"]


def test_a_success_keeps_the_folders_even_empty(tmp_path):
    out = tmp_path / "new" / "out"
    with removing_new_folders(out):
        prepare_folder(out)
    assert out.is_dir()


def test_folders_created_only_in_part_are_removed(tmp_path):
    """A failure between creating the parents and the folder itself (here: before the folder)."""
    out = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(AvemoError), removing_new_folders(out):
        out.parent.mkdir(parents=True)
        raise AvemoError("refused")
    assert list(tmp_path.iterdir()) == []


def test_none_watches_nothing(tmp_path):
    with pytest.raises(AvemoError), removing_new_folders(None):
        (tmp_path / "made").mkdir()
        raise AvemoError("refused")
    assert (tmp_path / "made").is_dir()
