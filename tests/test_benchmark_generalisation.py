"""benchmarks/generalisation.py --quick: every part end to end on a few real clips with a cheap extractor.

It checks that the script's path works (training, cross-corpus scoring, the degraded conditions with
training-fold babble, the report), not its figures; those come from the full run (docs/results).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_babble_talkers_are_training_speakers_with_enough_clips(benchmark_script):
    from avemo.datasets.pairing import pair_takes
    from avemo.datasets.records import Clip

    script = benchmark_script("generalisation")
    clips = [Clip(Path(f"/x/{s}_{i}.wav"), "ravdess", "happy", s, f"{s}_{i}", ("audio",))
             for s in ("01", "02", "03") for i in range(4)]
    train = list(pair_takes(clips).values())
    talkers = script.babble_talkers(train, 0, minimum=4)
    assert len(talkers) == 6 and len(set(talkers)) == 6  # two rounds of one clip per speaker
    assert {Path(t).stem.split("_")[0] for t in talkers} == {"01", "02", "03"}
    assert script.babble_talkers(train, 0, minimum=4) == talkers  # deterministic
    assert len(script.babble_talkers(train, 0, minimum=1)) == 3
    assert script.talkers_needed(["mp3_16k", "babble_5db:talkers=6"]) == 6



def test_each_variant_gets_its_own_verdict(benchmark_script):
    """plain and augmented are two recipes: the better of them on the test data is not a verdict on either."""
    verdict = benchmark_script("generalisation")._verdict
    assert verdict({"plain": 0.455, "augmented": 0.502}, 50) == "plain NOT met, augmented met"
    assert verdict({"plain": 0.188, "augmented": 0.038}, 8, above=False) == "plain NOT met, augmented met"
    assert verdict({"plain": None}, 50) == "plain not measured"


def test_one_fold_in_domain_accuracy_is_the_mean_alone(benchmark_script, tmp_path):
    """The in-domain table printed "accuracy mean ± std" with np.std: "± 0.0" for one fold (a --quick run),
    a spread that was never measured; avemo's reports print the mean alone there. Two folds keep their form."""
    script = benchmark_script("generalisation")

    def fold(accuracy: float) -> dict:
        full = {"accuracy": accuracy, "uar": accuracy, "macro_f1": accuracy, "n": 4, "confusion": [], "labels": []}
        return {"scores": {"plain": {"clean_full": full, "clean": {"accuracy": accuracy, "n": 4}}}}

    for res, expected in (({"1": fold(0.5)}, "50.0"), ({"1": fold(0.5), "2": fold(0.7)}, "60.0 ± 10.0")):
        summary = script.degraded_summary(res, [], variants=("plain",))
        assert (summary["plain"]["std_accuracy"] is None) == (len(res) == 1)
        row = script._fold_table(summary, ["plain"], tmp_path, "t", "audio")[2]
        assert row.split(" | ")[2] == expected, row

@pytest.mark.shared_data
def test_quick_run_writes_every_section(benchmark_script, tmp_path):
    script = benchmark_script("generalisation")
    out = tmp_path / "out"
    script.main(["--quick", "--out", str(out), "--work", str(tmp_path / "work"), "--cache", str(tmp_path / "cache"),
                 "--workers", "1", "--parts", "select,crosscorpus,loco,multicorpus,degraded,audio_au,report"])
    text = (out / "generalisation.md").read_text()
    for heading in ("## Answers", "Augmentation strength, chosen on validation speakers",
                    "RAVDESS only -> EmoDB-dev and CREMA-D", "Leave one corpus out", "leave one EmoDB speaker out",
                    "In-domain: RAVDESS", "Degraded audio", "babble_10db", "audio + AU",
                    "Degraded audio, AU means unchanged"):
        assert heading in text
    assert "Audio + AU: not run" not in text and "**RAVDESS 5-fold, audio + AU**" in text
    result = json.loads((out / "generalisation.json").read_text())
    assert result["quick"] and set(result["crosscorpus"]) == {"plain", "augmented", "adapted"}
    emodb = result["crosscorpus"]["plain"]["emodb"]
    assert "boredom" not in emodb["labels"] and 0.0 <= emodb["ece"] <= 1.0
    for part, target in (("crosscorpus", "emodb"), ("loco", "emodb->ravdess")):  # 13 and 25 clips: adapted
        adapted = {v: result[part]["adapted"][v][target] for v in ("plain", "augmented")}
        assert all(a["adapt"] == "mean" and a["labels"] for a in adapted.values())
    assert "at least 10 items" in result["crosscorpus"]["adapted"]["plain"]["crema_d"]["refused"]  # 2 clips
    assert "| emodb, adapted (test-corpus mean) | 13 |" in text and "| crema_d, adapted (test-corpus mean) | refused" in text
    assert "| emodb->ravdess, adapted (test-corpus mean) |" in text
    select = result["select"]
    assert set(select["candidates"]) == {"0.5", "1.0"} and select["chosen"] in (0.5, 1.0)
    assert select["used"] == 0.5  # the quick suite's own fraction, whichever the validation chose
    summary = result["degraded"]["summary"]
    for variant in ("plain", "augmented"):
        assert set(summary[variant]["conditions"]) == {"noise_white_10db", "babble_10db"}
    fold = result["degraded"]["folds"]["1"]
    assert all(f"Actor_{s}" not in t for t in fold["talkers"] for s in ("01", "02"))  # test and validation speakers
    assert (out / "generalisation" / "ravdess_to_emodb_plain_reliability.png").stat().st_size > 0
    audio_au = result["audio_au"]
    assert audio_au["model"][1]["video"] == "au_mlp" and audio_au["model"][1]["audio"] == "egemaps_mlp"  # the recipe
    for variant in ("plain", "augmented"):
        assert set(audio_au["summary"][variant]["conditions"]) == {"noise_white_10db", "babble_10db"}
    au_fold = audio_au["folds"]["1"]
    assert au_fold["degraded_takes"] == fold["degraded_takes"] and au_fold["talkers"] == fold["talkers"]  # same clips
    runs = sorted(p.name for p in (tmp_path / "work" / "runs" / "audio_au").iterdir())
    assert runs == [f"fold1_{v}_seed{s}" for v in ("augmented", "plain") for s in (0, 1)]  # the quick seed ensemble
    ckpt = json.loads((tmp_path / "work" / "runs" / "audio_au" / "fold1_plain_seed0" / "checkpoint.json").read_text())
    assert "openface_au_means" in json.dumps(ckpt)  # the AU table went into training


def test_processes_sharing_a_work_folder_keep_each_others_results(benchmark_script, tmp_path):
    """Two processes load the results before either saves (``--variants plain`` / ``augmented`` of one
    part): each save takes in what the other wrote, and references into the saved dict stay live."""
    parts = benchmark_script("parts")
    path = tmp_path / "work" / "degraded.pkl"
    plain, augmented = parts.load(path, {}), parts.load(path, {})
    entry = plain.setdefault(1, {"scores": {}})
    entry["scores"]["plain"] = {"clean": 0.8}
    plain["runs"] = [{"variants": ["plain"]}]
    parts.save_merged(path, plain)
    augmented.setdefault(1, {"scores": {}})["scores"]["augmented"] = {"clean": 0.7}
    augmented["runs"] = [{"variants": ["augmented"]}]
    parts.save_merged(path, augmented)
    entry["scores"]["plain"]["mp3_16k"] = 0.6  # the first process goes on with its entry
    parts.save_merged(path, plain)
    stored = parts.load(path)
    assert stored[1]["scores"] == {"plain": {"clean": 0.8, "mp3_16k": 0.6}, "augmented": {"clean": 0.7}}
    assert sorted(r["variants"][0] for r in stored["runs"]) == ["augmented", "plain"]
    assert not list(path.parent.glob("*.tmp"))


def test_a_condition_this_machine_cannot_apply_is_reported_and_skipped(benchmark_script, tmp_path, monkeypatch,
                                                                        capsys):
    """Issue 11, bad input: a degradation whose codec is missing is reported and skipped, not measured as
    something else under its name and not a traceback halfway through the degraded part."""
    from avemo.media.channels import ChannelUnavailableError, Codec, applicable_channels

    kept, unavailable = applicable_channels(["noise_white_10db", "mp3:encoder=libnotanencoder", "gain_-20db"])
    assert kept == ["noise_white_10db", "gain_-20db"]
    assert list(unavailable) == ["mp3:encoder=libnotanencoder"]
    assert "no libnotanencoder encoder" in unavailable["mp3:encoder=libnotanencoder"]

    def no_mp3(self):  # this machine's PyAV, as if built without an MP3 encoder
        if self.config.codec == "mp3":
            raise ChannelUnavailableError(f"channel {self.name}: this PyAV/FFmpeg build has no libmp3lame encoder")

    monkeypatch.setattr(Codec, "check", no_mp3)
    script = benchmark_script("generalisation")
    args = script.parser("test", script.PARTS, []).parse_args(
        ["--conditions", "mp3_16k,noise_white_10db,aac_24k", "--cache", str(tmp_path / "cache"),
         "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    ctx = script.Context(args)
    assert ctx.degraded["conditions"] == ["noise_white_10db", "aac_24k"]
    assert list(ctx.unavailable) == ["mp3_16k"]
    assert "degraded condition mp3_16k skipped: channel mp3_16k: this PyAV/FFmpeg build has no libmp3lame" \
        in capsys.readouterr().out
    (line,) = [x for x in script.unavailable_lines(ctx.unavailable) if x]
    assert line.startswith("Not applied on this machine, hence skipped") and "mp3_16k (channel mp3_16k:" in line
    assert script.unavailable_lines({}) == []
