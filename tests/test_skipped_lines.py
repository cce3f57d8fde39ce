"""The files and takes a command skipped, on stderr: the first ``SKIPPED_SHOWN`` one a line, then one
line that counts the others by kind of reason and says where the full list is. A wrong --root (a parent
folder) read 1,217 files that follow no naming convention, and `avemo evaluate` printed a line for each
before anything useful."""

from __future__ import annotations

import json
import shutil

import pytest

from avemo.cli.benchmark import _print_bench
from avemo.cli.listing import SKIPPED_SHOWN, _reason_counts, _reason_kind

JUNK = 30  # files with names that follow no convention: more than SKIPPED_SHOWN
NOT_RAVDESS = "not a RAVDESS name: expected 7 two-digit fields MM-VV-EE-II-SS-RR-AA"


@pytest.fixture
def junk_corpus(make_ravdess, tmp_path):
    """A copy of a generated RAVDESS corpus (3 speakers x 8 takes) with :data:`JUNK` empty files named
    ``junk_NN.wav`` beside its actors' folders."""
    root = tmp_path / "corpus"
    shutil.copytree(make_ravdess(("01", "05", "07")), root)
    for i in range(JUNK):
        (root / f"junk_{i:02d}.wav").write_bytes(b"")
    return root


def _skipped_lines(err: str) -> list[str]:
    """The lines of ``err`` about skipped files (one per file, and the count of the others)."""
    return [line for line in err.splitlines() if line.startswith(("skipped ", "... and "))]


def _said_rest(lines: list[str], full_list: str) -> None:
    assert len(lines) == SKIPPED_SHOWN + 1 and all(line.startswith("skipped ") for line in lines[:-1])
    assert lines[-1] == (f"... and {JUNK - SKIPPED_SHOWN} more skipped (reasons: {NOT_RAVDESS} "
                         f"×{JUNK - SKIPPED_SHOWN}); all {JUNK} {full_list}")


def test_reasons_are_grouped_without_what_is_particular_to_a_file():
    assert _reason_kind("/d/x/09a01Fa.wav", "EmoDB speaker 09 is not one of 03, 08, 10") == \
        "EmoDB speaker … is not one of …"
    assert _reason_kind("ravdess:03-01-01-01-01-01-02", "openface has no row for take ravdess:03-01-01-01-01-01-02") \
        == "openface has no row for take …"
    assert _reason_kind("/m/train.csv:12", "emotion 'joyy' is not a MELD emotion") == "emotion … is not a MELD emotion"
    # a short name is not cut out of the words of the reason
    assert _reason_kind("c", "cannot decode") == "cannot decode"
    items = [*((f"a{i}", "no audio") for i in range(3)), ("b", "code 01 bad"), ("c", "code 02 bad"),
             *((f"x{i}", f"reason {chr(97 + i)}{chr(97 + i)}") for i in range(6))]
    # an identical reason is named as it is, several of one kind by the kind; past 5 kinds, counted together
    assert _reason_counts(items) == ("reasons: no audio ×3, code … bad ×2, reason aa ×1, reason bb ×1, reason cc ×1, "
                                     "3 other reasons ×3")


def test_train_and_evaluate_name_the_first_skipped_files_and_count_the_others(junk_corpus, tmp_path, avemo_main):
    run, cache = tmp_path / "run", tmp_path / "cache"
    code, _, err = avemo_main("train", "-d", "ravdess", "-r", junk_corpus, "-m", "egemaps_mlp", "--epochs", "1",
                              "-j", "1", "--val-speakers", "07", "--cache", cache, "--out", run)
    assert code == 0, err
    _said_rest(_skipped_lines(err), f'listed in {run / "checkpoint.json"} ("data": "skipped")')
    recorded = json.loads((run / "checkpoint.json").read_text())["data"]["skipped"]
    assert sorted(s["file"] for s in recorded) == [f"junk_{i:02d}.wav" for i in range(JUNK)]

    report = tmp_path / "ev.json"
    for json_option, full_list in (([], "listed by --json FILE"), (["--json", report], f'listed in {report} ("skipped")')):
        code, _, err = avemo_main("evaluate", "-c", run, "-r", junk_corpus, "--cache", cache, *json_option)
        assert code == 0, err
        _said_rest(_skipped_lines(err), full_list)
    skipped = json.loads(report.read_text())["skipped"]
    assert len(skipped) == JUNK and {s["reason"] for s in skipped} == {NOT_RAVDESS}


def test_extract_counts_the_others_in_its_lines_and_its_table(junk_corpus, tmp_path, avemo_main, monkeypatch):
    from avemo.cli.app import console_err

    monkeypatch.setattr(console_err, "_width", 1000)  # a table row a line: no path folded
    summary = tmp_path / "summary.json"
    code, _, err = avemo_main("extract", "--root", junk_corpus, "--dataset", "ravdess", "-f", "mfcc",
                              "--cache", tmp_path / "c", "--summary", summary)
    assert code == 1, err  # skipped files: exit code 1, the others are kept
    lines = _skipped_lines(err)
    _said_rest(lines, f'listed in {summary} ("skipped")')
    table = err[err.index("Not extracted"):]
    assert sum(f"junk_{i:02d}.wav" in table for i in range(JUNK)) == SKIPPED_SHOWN
    assert f"... and {JUNK - SKIPPED_SHOWN} more" in table
    assert len(json.loads(summary.read_text())["skipped"]) == JUNK


@pytest.mark.parametrize("n", [SKIPPED_SHOWN, JUNK])
def test_benchmark_says_where_its_report_lists_them_all(n, tmp_path, capsys):
    """With SKIPPED_SHOWN or fewer, every file has its line and nothing more is said."""
    results = {"models": {}, "skipped": [{"file": f"/d/junk_{i:02d}.wav", "reason": NOT_RAVDESS} for i in range(n)]}
    _print_bench(results, tmp_path / "r.md", tmp_path / "r.json")
    lines = _skipped_lines(capsys.readouterr().err)
    if n == SKIPPED_SHOWN:
        assert lines == [f"skipped /d/junk_{i:02d}.wav: {NOT_RAVDESS}" for i in range(n)]
    else:
        _said_rest(lines, f"listed in {tmp_path / 'r.json'}")


COPY_OF_TAKE = "a copy of take … (audio), which is read from …"


def test_extract_names_the_first_duplicates_and_counts_the_others(make_ravdess, tmp_path, avemo_main):
    """A stray folder of copies of a corpus's takes printed a line per copy, as skipped files did."""
    root = tmp_path / "corpus"
    shutil.copytree(make_ravdess(("01", "05", "07")), root)
    takes = sorted(root.glob("Actor_*/*.wav"))
    assert len(takes) > SKIPPED_SHOWN
    (root / "0copies").mkdir()  # sorts before the Actor_XX folders: each copy would have won
    for take in takes:
        (root / "0copies" / take.name).symlink_to(take)
    code, _, err = avemo_main("extract", "--root", root, "--dataset", "ravdess", "-f", "mfcc",
                              "--cache", tmp_path / "c")
    assert code == 0, err  # a duplicate is not a file the command could not use
    lines = [line for line in err.splitlines() if line.startswith(("duplicate ", "... and "))]
    assert lines[:-1] == [f"duplicate {root / '0copies' / t.name}: a copy of take {t.stem[3:]} (audio), which is "
                          f"read from {t}" for t in sorted(takes, key=lambda t: t.name)[:SKIPPED_SHOWN]]
    # no file lists the duplicates of extract: the count says nothing of where they are
    rest = len(takes) - SKIPPED_SHOWN
    assert lines[-1] == f"... and {rest} more duplicates (reasons: {COPY_OF_TAKE} ×{rest})"


def test_benchmark_says_where_its_report_lists_every_duplicate(tmp_path, capsys):
    copies = [{"file": f"/d/0copies/{i:02d}.wav", "reason": f"a copy of take {i:02d} (audio), which is read from "
                                                              f"/d/Actor_01/{i:02d}.wav"} for i in range(JUNK)]
    _print_bench({"models": {}, "skipped": [], "duplicates": copies}, tmp_path / "r.md", tmp_path / "r.json")
    lines = capsys.readouterr().err.splitlines()
    assert lines[:-1] == [f"duplicate {c['file']}: {c['reason']}" for c in copies[:SKIPPED_SHOWN]]
    assert lines[-1] == (f"... and {JUNK - SKIPPED_SHOWN} more duplicates (reasons: {COPY_OF_TAKE} "
                         f"×{JUNK - SKIPPED_SHOWN}); all {JUNK} listed in {tmp_path / 'r.json'}")


def test_the_not_extracted_table_names_a_long_path_whole(monkeypatch, capsys):
    """On an 80-column terminal the table cut a file's path to "/data/corpus/Actor_02/03-01-…": the
    file that failed was not named. Its path is folded over lines instead."""
    from avemo.cli.app import console_err
    from avemo.cli.extract import _print_not_extracted
    from avemo.extraction.core import FileOutcome

    monkeypatch.setattr(console_err, "_width", 80)
    path = "/data/a/rather/long/corpus/folder/Actor_02/03-01-02-02-01-01-02.flac"
    _print_not_extracted([FileOutcome(path, errors={"mfcc": "not a media file: its first bytes are those of "
                                                             "no supported container"})], [], "file", "")
    rows = [line.split("│") for line in capsys.readouterr().err.splitlines() if line.startswith("│")]
    assert "".join(cells[1].strip() for cells in rows) == path


def test_a_folder_of_files_that_are_no_media_lists_the_supported_containers_once(tmp_path, avemo_main, monkeypatch):
    """25 text files named .wav: each row of extract's table ended with the 13 supported containers. Each
    file keeps its own reason; the list is said in the first row only."""
    from avemo.cli.app import console_err
    from avemo.media.sniff import SUPPORTED_SAID, describe_supported

    monkeypatch.setattr(console_err, "_width", 1000)  # a table row a line
    for i in range(25):
        (tmp_path / f"notes_{i:02d}.wav").write_text(f"not audio {i}\n")
    code, _, err = avemo_main("extract", tmp_path, "-f", "mfcc", "--cache", tmp_path / "c")
    assert code == 1, err
    rows = [line for line in err.splitlines() if "notes_" in line]
    assert len(rows) == 25 and all("not a media file: its first bytes are those of no supported container" in row
                                   for row in rows)
    assert err.count(describe_supported()) == 1 and describe_supported() in rows[0]
    assert all(SUPPORTED_SAID in row for row in rows[1:])


def test_the_skipped_lines_of_train_list_the_supported_containers_once(capsys):
    """``avemo train`` on a corpus of corrupt files: the first line names the supported containers, the
    others and the count of the rest say "listed above"; the other reasons are left as they are."""
    from avemo.cli.listing import _print_skipped
    from avemo.media.sniff import SUPPORTED_SAID, describe_supported

    reason = f"egemaps: not a media file: its first bytes are those of no supported container ({describe_supported()})"
    items = [(f"ravdess:01-0{i % 8}-01-01-{i:02d}-01", f"/d/{i:02d}.wav: {reason}") for i in range(JUNK)]
    _print_skipped([("/d/junk.wav", NOT_RAVDESS), *items], "listed in run.json")
    lines = _skipped_lines(capsys.readouterr().err)
    assert lines[0] == f"skipped /d/junk.wav: {NOT_RAVDESS}"
    assert lines[1].endswith(reason) and "\n".join(lines).count(describe_supported()) == 1
    assert all(line.endswith(f"no supported container {SUPPORTED_SAID}") for line in lines[2:SKIPPED_SHOWN])
    assert lines[-1].startswith(f"... and {JUNK + 1 - SKIPPED_SHOWN} more skipped (reasons: … egemaps: not a media file")


def test_predict_lists_the_supported_containers_once_for_the_files_it_could_not_read(tmp_path, avemo_main):
    from avemo.media.sniff import SUPPORTED_SAID, describe_supported

    files = [tmp_path / f"notes_{i}.mp4" for i in range(3)]
    for f in files:
        f.write_text("not a video\n")
    code, _, err = avemo_main("predict", *files)
    assert code == 1
    lines = err[err.index("Not predicted (3 of 3):"):].splitlines()[1:]
    assert [line.split(": ")[0].strip() for line in lines] == [str(f) for f in files]
    assert lines[0].endswith(f"({describe_supported()})") and err.count(describe_supported()) == 1
    assert all(line.endswith(f"no supported container {SUPPORTED_SAID}") for line in lines[1:])
