"""Speaker-disjoint fold plans: the built-in RAVDESS-AU plan, the generic builder, JSON, split, leakage."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avemo.datasets import (
    Fold,
    FoldPlan,
    builtin_plan,
    check_leakage,
    covering_plan,
    list_builtin_plans,
    make_plan,
    ravdess_plan,
    read_ravdess,
    split,
)
from avemo.errors import ConfigError, DatasetError, LeakageError

#: the 20 RAVDESS actors of the RAVDESS-AU benchmark (actors 03, 10, 17 and 24 are not in it)
RAVDESS_AU_SPEAKERS = tuple(f"{i:02d}" for i in range(1, 25) if i not in (3, 10, 17, 24))

GUIDE_TEST_GROUPS = [
    ("01", "02", "04", "05"),
    ("06", "07", "08", "09"),
    ("11", "12", "13", "14"),
    ("15", "16", "18", "19"),
    ("20", "21", "22", "23"),
]


def test_builtin_ravdess_au_plan_matches_the_guide():
    plan = builtin_plan("ravdess_au")
    assert "ravdess_au" in list_builtin_plans()
    assert plan.dataset == "ravdess" and plan.name == "ravdess_au" and len(plan) == 5
    assert plan.speakers == RAVDESS_AU_SPEAKERS and len(plan.speakers) == 20
    assert [f.test for f in plan] == GUIDE_TEST_GROUPS
    for fold in plan:
        assert (len(fold.train), len(fold.val), len(fold.test)) == (14, 2, 4)
        # one male (odd actor) and one female (even actor) validation speaker from the next group
        assert sorted(int(s) % 2 for s in fold.val) == [0, 1]
        assert set(fold.val) <= set(GUIDE_TEST_GROUPS[fold.number % 5])
    assert [f.val for f in plan] == [("06", "07"), ("11", "12"), ("15", "16"), ("20", "21"), ("01", "02")]
    # the shipped file is exactly what the rule builds
    assert plan == ravdess_plan(RAVDESS_AU_SPEAKERS, 5, name="ravdess_au")


def test_every_speaker_tested_exactly_once_and_partitions_disjoint():
    plan = builtin_plan("ravdess_au")
    assert Counter(s for f in plan for s in f.test) == Counter(plan.speakers)
    for fold in plan:
        assert not set(fold.train) & set(fold.val)
        assert not set(fold.train) & set(fold.test)
        assert not set(fold.val) & set(fold.test)
        assert set(fold.speakers) == set(plan.speakers)


def test_json_round_trip(tmp_path):
    plan = make_plan([f"s{i}" for i in range(11)], 3, n_val=2, order="shuffle", seed=7, name="mine", dataset="folder")
    path = plan.to_json(tmp_path / "plans" / "mine.json")
    data = json.loads(path.read_text())
    assert data["format"] == "avemo.fold_plan/1" and data["seed"] == 7 and len(data["folds"]) == 3
    again = FoldPlan.from_json(path)
    assert again == plan
    assert again.to_json(tmp_path / "again.json").read_text() == path.read_text()


def test_make_plan_is_deterministic_and_seeded():
    speakers = [str(i) for i in range(1, 31)]
    a = make_plan(speakers, 5, order="shuffle", seed=3)
    b = make_plan(list(reversed(speakers)), 5, order="shuffle", seed=3)
    c = make_plan(speakers, 5, order="shuffle", seed=4)
    assert a == b  # input order does not matter
    assert a.speakers != c.speakers
    assert make_plan(speakers, 5).speakers == tuple(speakers)  # numeric ids sorted by number
    assert make_plan(speakers, 5).seed is None


def test_uneven_groups_and_no_validation():
    plan = make_plan([f"{i:02d}" for i in range(1, 12)], 3, n_val=0)
    assert [len(f.test) for f in plan] == [4, 4, 3]
    assert all(f.val == () for f in plan)
    assert plan.folds[0].test == ("01", "02", "03", "04")


def test_validation_rule_without_genders_takes_the_next_group_in_order():
    plan = make_plan(list("abcdefghij"), 5, n_val=3)
    assert plan.folds[0].val == ("c", "d", "e")  # group 2 (c, d), then group 3 (e)
    assert plan.folds[4].val == ("a", "b", "c")  # cyclic


def test_the_standard_ravdess_plan_has_all_24_actors_and_is_picked_for_them():
    plan = builtin_plan("ravdess")
    assert plan.speakers == tuple(f"{i:02d}" for i in range(1, 25)) and len(plan) == 6
    assert plan == ravdess_plan(plan.speakers, 6, name="ravdess")
    assert [f.test for f in plan][:2] == [("01", "02", "03", "04"), ("05", "06", "07", "08")]
    for fold in plan:  # 4 test, 2 gender-balanced validation speakers (odd actors male, even female)
        assert len(fold.test) == 4 and len(fold.val) == 2 and len(fold.train) == 18
        assert {int(s) % 2 for s in fold.val} == {0, 1}
    assert {"ravdess", "ravdess_au"} <= set(list_builtin_plans())
    # the smallest built-in plan that covers a copy of the dataset: this project's 20 actors or all 24
    assert covering_plan("ravdess", RAVDESS_AU_SPEAKERS).name == "ravdess_au"
    assert covering_plan("ravdess", ["03", "24"]).name == "ravdess"
    assert covering_plan("emodb", ["03"]) is None


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"k": 1}, "cannot make 1 folds"),
        ({"k": 21}, "cannot make 21 folds"),
        ({"k": 5, "n_val": 16}, "leaves no training speaker"),
        ({"k": 5, "order": "random"}, "not 'sorted' or 'shuffle'"),
        ({"k": 5, "genders": {"01": "male"}}, "genders lack"),
    ],
)
def test_make_plan_rejects_bad_arguments(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        make_plan(RAVDESS_AU_SPEAKERS, **kwargs)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 40),
    data=st.data(),
)
def test_make_plan_invariants(n, data):
    k = data.draw(st.integers(2, n))
    largest = -(-n // k)
    n_val = data.draw(st.integers(0, max(0, n - largest - 1)))
    genders = data.draw(st.none() | st.just({str(i): "mf"[i % 2] for i in range(n)}))
    seed = data.draw(st.integers(0, 1000))
    plan = make_plan([str(i) for i in range(n)], k, n_val=n_val, order="shuffle", seed=seed, genders=genders)
    assert Counter(s for f in plan for s in f.test) == Counter(plan.speakers)
    assert all(len(f.val) == n_val and f.train for f in plan)
    if genders and n_val >= 2:
        for f in plan:  # gender-balanced when the candidate pool allows it
            counts = Counter(genders[s] for s in f.val)
            pool = Counter(genders[s] for s in plan.speakers if s not in f.test)
            need = -(-n_val // 2)
            if pool["m"] >= need and pool["f"] >= need:
                assert abs(counts["m"] - counts["f"]) <= 1
    assert FoldPlan.from_dict(plan.to_dict()) == plan


@pytest.mark.parametrize(
    "edit, error, fragment",
    [
        (lambda d: d["folds"][0].update(val=["01", "08"]), LeakageError, "in both train and val"),
        (lambda d: d["folds"][0].update(val=["05", "06"]), LeakageError, "speaker(s) 05 in both val and test"),
        (lambda d: d["folds"][1].update(number=3), ConfigError, "fold 2 is numbered 3"),
        (lambda d: d["folds"][0]["train"].remove("23"), ConfigError, "(unknown none, missing 23)"),
        (lambda d: d.update(format="other/1"), ConfigError, "format 'other/1'"),
        (lambda d: d.update(colour="red"), ConfigError, "unknown option(s) colour;"),
        (lambda d: d["folds"][0].update(number="one"), ConfigError, "expected int"),
    ],
)
def test_invalid_plan_files(tmp_path, edit, error, fragment):
    data = builtin_plan("ravdess_au").to_dict()
    edit(data)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    with pytest.raises(error) as info:
        FoldPlan.from_json(path)
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_speaker_tested_twice_is_rejected():
    folds = (Fold(1, ("a",), (), ("b", "c")), Fold(2, ("a",), (), ("b", "c")), Fold(3, ("c",), (), ("a", "b")))
    with pytest.raises(ConfigError, match="tested exactly once"):
        FoldPlan("p", "x", ("a", "b", "c"), folds)


def test_unreadable_plan_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read fold plan"):
        FoldPlan.from_json(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        FoldPlan.from_json(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="no built-in fold plan 'iemocap'"):
        builtin_plan("iemocap")


# --- splitting clips ---------------------------------------------------------------------------


def ravdess_clips(root: Path, speakers, modalities=("03",)):
    for s in speakers:
        for m in modalities:
            ext = "wav" if m == "03" else "mp4"
            for e in ("01", "05"):
                path = root / f"Actor_{s}" / f"{m}-01-{e}-01-01-01-{s}.{ext}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"")
    return read_ravdess(root).clips


def test_split_by_builtin_plan(tmp_path):
    clips = ravdess_clips(tmp_path, RAVDESS_AU_SPEAKERS, ("01", "03"))
    plan = builtin_plan("ravdess_au")
    for fold in plan:
        train, val, test = plan.split(clips, fold.number)
        assert {c.speaker for c in test} == set(fold.test)
        assert {c.speaker for c in val} == set(fold.val)
        assert {c.speaker for c in train} == set(fold.train)
        assert len(train) + len(val) + len(test) == len(clips)
        # both modalities of a take fall on the same side
        assert {c.take for c in train}.isdisjoint({c.take for c in test})


@pytest.mark.shared_data
def test_split_shared_audio(ravdess_speech_root):
    clips = read_ravdess(ravdess_speech_root).clips
    plan = builtin_plan("ravdess_au")
    sizes = [tuple(len(p) for p in plan.split(clips, f.number)) for f in plan]
    assert sizes == [(840, 120, 240)] * 5
    assert sum(len(plan.split(clips, f.number).test) for f in plan) == 1200


def test_takes_split_like_clips_and_unknown_speakers_raise(tmp_path):
    """Takes go through the one split of clips: a take's files stay together, a speaker outside the
    fold is an error (it was silently dropped when takes had a split of their own)."""
    from avemo.datasets import pair_takes

    clips = ravdess_clips(tmp_path, ["01", "03", "06", "07"], ("01", "03"))
    takes = list(pair_takes(clips).values())
    fold = builtin_plan("ravdess_au").fold(1)
    with pytest.raises(DatasetError, match=r"speaker\(s\) 03 of the clips are in no partition of fold 1"):
        split(takes, fold)
    known = [t for t in takes if t.speaker != "03"]
    result = split(known, fold)
    assert result.number == 1 and [len(p) for p in result] == [0, 4, 2]  # 06, 07 validate; 01 tests
    train, val, test = result
    assert {t.speaker for t in val} == {"06", "07"} and {t.speaker for t in test} == {"01"}
    assert all(len(t.files) == 2 for t in val + test)  # both files of each take on one side


def test_split_unknown_speakers_and_datasets(tmp_path):
    clips = ravdess_clips(tmp_path, ["01", "03", "06"])
    fold = builtin_plan("ravdess_au").fold(1)
    with pytest.raises(DatasetError, match=r"speaker\(s\) 03 "):
        split(clips, fold)
    train, val, test = split(clips, fold, extra="drop")
    assert {c.speaker for c in train + val + test} == {"01", "06"}
    mixed = [clips[0], replace(clips[1], dataset="emodb")]
    with pytest.raises(DatasetError, match="one dataset"):
        split(mixed, fold)
    with pytest.raises(DatasetError, match="is for folder clips, got clips of"):
        make_plan(["a", "b"], 2, n_val=0, dataset="folder").split(clips, 1)
    with pytest.raises(ConfigError, match="folds 1..5, not 6"):
        builtin_plan("ravdess_au").fold(6)


def test_leakage_check_catches_a_mixed_speaker(tmp_path):
    clips = ravdess_clips(tmp_path, ["01", "02"])
    a = [c for c in clips if c.speaker == "01"]
    b = [c for c in clips if c.speaker == "02"]
    check_leakage(a, [], b)  # clean
    with pytest.raises(LeakageError) as info:
        check_leakage(a[:1], [], a[1:] + b)
    assert "speaker ravdess:01 is in train" in str(info.value) and "test" in str(info.value)


def test_leakage_check_catches_a_take_across_modalities(tmp_path):
    """A RAVDESS 01 video in one partition and its take's 03 audio in another is leakage."""
    clips = ravdess_clips(tmp_path, ["01"], ("01", "03"))
    video = next(c for c in clips if c.modalities == ("audio", "video") and c.emotion == "angry")
    audio = next(c for c in clips if c.modalities == ("audio",) and c.take == video.take)
    assert video.path != audio.path
    with pytest.raises(LeakageError) as info:
        check_leakage([audio], [video], [])
    message = str(info.value)
    assert f"take ravdess:{video.take} is in train ({audio.path.name}) and val ({video.path.name})" in message


def test_leakage_check_catches_a_take_even_under_another_speaker_id(tmp_path):
    clips = ravdess_clips(tmp_path, ["01"], ("03",))
    relabelled = replace(clips[0], speaker="99", path=tmp_path / "copy.wav")
    with pytest.raises(LeakageError, match="take ravdess:"):
        check_leakage([clips[0]], [], [relabelled])
