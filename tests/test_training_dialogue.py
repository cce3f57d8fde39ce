"""Dialogue context in the data layer, and `avemo train` / `avemo evaluate` on a generated MELD folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from avemo.cli import app
from avemo.errors import CheckpointError, ConfigError, DatasetError
from avemo.training import load_data, resolve_split
from avemo.training.data import previous_utterances
from avemo.training.experiment import select_split

HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
          "Season", "Episode", "StartTime", "EndTime"]
EMOTIONS = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
WORDS = ["great", "terrible", "what", "no way", "okay", "sorry", "wow", "hello", "please", "fine"]


def write_meld(path: Path, dialogues: int, turns: int, *, seed: int, skip: tuple[int, int] | None = None) -> None:
    """A MELD-format CSV: ``dialogues`` dialogues of ``turns`` utterances (one turn left out with ``skip``)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        n = 0
        for d in range(dialogues):
            for u in range(turns):
                if skip == (d, u):
                    continue
                n += 1
                emotion = EMOTIONS[(d * turns + u + seed) % len(EMOTIONS)]
                text = f"{WORDS[(n + seed) % len(WORDS)]} {emotion} {WORDS[(3 * n) % len(WORDS)]}"
                writer.writerow([n, text, ["Ross", "Rachel"][u % 2], emotion, "neutral", d, u, 1, 1,
                                 "00:00:01,000", "00:00:02,000"])


@pytest.fixture
def meld(tmp_path):
    root = tmp_path / "meld"
    root.mkdir()
    write_meld(root / "train_sent_emo.csv", 4, 6, seed=0, skip=(1, 2))
    write_meld(root / "dev_sent_emo.csv", 2, 5, seed=3)
    return root


def test_previous_utterances_follow_turns_within_each_dialogue(meld):
    data = load_data("meld", meld)
    train, dev, test, info = resolve_split(data)
    assert (len(train), len(dev), len(test)) == (23, 10, 0) and info["split"] == "official"
    shuffled = train[::-1]  # the order of the takes does not matter, turns do
    previous = previous_utterances(shuffled)
    for take, before in zip(shuffled, previous, strict=True):
        clip = next(iter(take))
        turns = [next(iter(shuffled[j])).turn for j in before]
        dialogues = {next(iter(shuffled[j])).dialogue for j in before}
        assert turns == sorted(turns) and all(t < clip.turn for t in turns)
        assert dialogues <= {clip.dialogue}
        expected = clip.turn - (1 if clip.dialogue.endswith(":1") and clip.turn > 2 else 0)
        assert len(before) == expected  # dialogue 1 lacks turn 2: the gap is not filled


def test_a_dataset_without_dialogues_cannot_give_context(tmp_path):
    from avemo.datasets.pairing import Take
    from avemo.datasets.records import Clip

    clip = Clip(tmp_path / "a.wav", "folder", "happy", "s1", "a", ("audio",))
    with pytest.raises(DatasetError, match="no dialogue") as refused:
        previous_utterances([Take("folder", "a", "s1", "happy", {("audio",): clip})])
    # the option that turns it off, as gao_dialogue spells it (it said "a context of None", refused by the option)
    assert str(refused.value).endswith('a model without it (gao_dialogue: "context": 0)')


def test_select_split_names_the_splits_there_are(meld):
    data = load_data("meld", meld)
    assert len(select_split(data, "dev").takes) == 10
    with pytest.raises(DatasetError, match=r"no 'test' takes .*dev.*train"):
        select_split(data, "test")


def test_cli_trains_on_train_selects_on_dev_and_evaluates_one_split(meld, tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    config = {"modalities": ["text"], "context": 2, "text_hidden": 8, "d_model": 16, "heads": 2}
    result = runner.invoke(app, [
        "train", "--dataset", "meld", "--root", str(meld), "--model", "gao_dialogue",
        "--model-config", json.dumps(config), "--epochs", "2", "--out", str(run), "--device", "cpu",
        "--cache", str(tmp_path / "cache"), "--workers", "1",
    ])
    assert result.exit_code == 0, result.output
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["data"]["n"] == {"train": 23, "val": 10, "test": 0}
    out = tmp_path / "dev.json"
    result = runner.invoke(app, [
        "evaluate", "--checkpoint", str(run), "--dataset", "meld", "--root", str(meld), "--split", "dev",
        "--json", str(out), "--cache", str(tmp_path / "cache"), "--workers", "1",
    ])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert scores["n"] == 10 and scores["split"] == "dev"
    assert {"accuracy", "weighted_f1", "macro_f1"} <= set(scores)
    # the checkpoint's dev scores (context built from dev in training) are what evaluate finds
    assert scores["accuracy"] == pytest.approx(meta["metrics"]["val"]["accuracy"])
    assert scores["weighted_f1"] == pytest.approx(meta["metrics"]["val"]["weighted_f1"])
    result = runner.invoke(app, [
        "evaluate", "--checkpoint", str(run), "--dataset", "meld", "--root", str(meld), "--split", "test",
        "--cache", str(tmp_path / "cache"),
    ])
    assert isinstance(result.exception, DatasetError) and "no 'test' takes" in str(result.exception)


def test_cli_trains_paper_002_split_on_a_generated_iemocap(tmp_path):
    """--plan iemocap_loso --fold 5: sessions 1-4 train and validate, session 5 tests (paper 002, §5.2)."""
    from test_datasets_iemocap import SESSION1, _other_session, _write_session

    root = tmp_path / "IEMOCAP_full_release"
    _write_session(root, 1, SESSION1)
    for n in range(2, 6):
        _write_session(root, n, _other_session(n))
    run = tmp_path / "run"
    config = {"modalities": ["text"], "context": 1, "text_hidden": 8, "d_model": 16, "heads": 2}
    result = CliRunner().invoke(app, [
        "train", "--dataset", "iemocap", "--root", str(root), "--protocol", "iemocap6", "--plan", "iemocap_loso",
        "--fold", "5", "--model", "gao_dialogue", "--model-config", json.dumps(config), "--epochs", "1",
        "--out", str(run), "--device", "cpu", "--cache", str(tmp_path / "cache"), "--workers", "1",
    ])
    assert result.exit_code == 0, result.output
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["data"]["speakers"]["test"] == ["Ses05F", "Ses05M"]
    assert meta["data"]["n"]["test"] == 2
    assert meta["labels"]["name"] == "iemocap6"
    # evaluate without --protocol reads the corpus as the checkpoint trained on it: iemocap6, one to one (it
    # read iemocap4, dropping the model's excited and frustrated and merging excited clips into happy)
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, [
        "evaluate", "--checkpoint", str(run), "--dataset", "iemocap", "--root", str(root), "--json", str(out),
        "--cache", str(tmp_path / "cache"), "--workers", "1",
    ])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert scores["labels"] == ["neutral", "happy", "sad", "angry", "excited", "frustrated"]
    assert scores["n"] == sum(meta["data"]["n"].values())


def test_class_balanced_loss_weights_inverse_frequency():
    import numpy as np
    import torch

    from avemo.models import create_model
    from avemo.training.trainer import _class_weights

    weights = _class_weights(np.array([0, 0, 0, 1]), 3)
    torch.testing.assert_close(weights, torch.tensor([4 / 9, 4 / 3, 0.0]))
    model = create_model("gao_dialogue", num_classes=3, modalities=["text"], text_hidden=4, d_model=8, heads=2)
    logits, targets = torch.randn(4, 3), torch.tensor([0, 0, 0, 1])
    torch.testing.assert_close(model.loss(logits, targets), torch.nn.functional.cross_entropy(logits, targets))
    model.class_weights = weights
    torch.testing.assert_close(model.loss(logits, targets),
                               torch.nn.functional.cross_entropy(logits, targets, weight=weights))


def test_copies_of_a_training_set_get_context_from_their_own_copy(meld):
    data = load_data("meld", meld)
    train = resolve_split(data)[0]
    twice = [*train, *train]  # e.g. the originals and their perturbed copies
    previous = previous_utterances(twice)
    n = len(train)
    assert previous[:n] == previous_utterances(train)
    assert previous[n:] == [[j + n for j in p] for p in previous[:n]]


def test_cli_trains_text_and_audio_with_one_previous_utterance_on_a_generated_iemocap(tmp_path, monkeypatch):
    """``gao_dialogue`` with text + audio and H = 1 through ``avemo train``: every training batch carries
    the audio context (log-mel frames of the previous utterance) with its mask, present where the
    dialogue has a previous turn, and the run ends with validation and test scores."""
    import torch

    from avemo.models.fusion.gao_dialogue import GaoDialogue
    from test_datasets_iemocap import SESSION1, _other_session, _write_session

    root = tmp_path / "IEMOCAP_full_release"
    _write_session(root, 1, SESSION1)
    for n in range(2, 6):
        _write_session(root, n, _other_session(n))

    seen: list[dict[str, tuple]] = []
    scored: list[set[str]] = []  # the inputs of the validation and test passes
    context_rows = []  # per training batch: (rows with a previous utterance's audio, rows without)
    compute = GaoDialogue.compute

    def spy(self, inputs):
        if self.training:
            seen.append({k: tuple(v.shape) for k, v in inputs.items()})
            present = inputs["audio_context_mask"].flatten(1).any(dim=1)
            context_rows.append((int(present.sum()), int((~present).sum())))
            # the audio context's frames are real log-mel values where its mask says so, zero padding elsewhere
            ctx, mask = inputs["audio_context"], inputs["audio_context_mask"]
            assert torch.isfinite(ctx).all() and bool((ctx[~mask] == 0).all()) and bool(ctx[mask].abs().sum() > 0)
        else:
            scored.append(set(inputs))
        return compute(self, inputs)

    monkeypatch.setattr(GaoDialogue, "compute", spy)
    run = tmp_path / "run"
    audio = {"n_mels": 16, "hidden": 8, "lstm_layers": 1, "linear_layers": 1}
    config = {"modalities": ["text", "audio"], "context": 1, "text_hidden": 8, "d_model": 16, "heads": 2,
              "audio_config": audio}
    result = CliRunner().invoke(app, [
        "train", "--dataset", "iemocap", "--root", str(root), "--protocol", "iemocap6", "--plan", "iemocap_loso",
        "--fold", "5", "--model", "gao_dialogue", "--model-config", json.dumps(config), "--epochs", "2",
        "--out", str(run), "--device", "cpu", "--cache", str(tmp_path / "cache"), "--workers", "1",
    ])
    assert result.exit_code == 0, result.output

    assert seen, "the model was never called in training"
    for shapes in seen:
        assert {"text", "text_mask", "text_context", "text_context_mask",
                "audio", "audio_mask", "audio_context", "audio_context_mask"} <= set(shapes)
        b, frames, mels = shapes["audio"]
        assert mels == 16 and shapes["audio_mask"] == (b, frames)
        assert shapes["audio_context"][:2] == (b, 1) and shapes["audio_context"][3] == 16  # H = 1 previous utterance
        assert shapes["audio_context_mask"] == shapes["audio_context"][:3]
    # some training utterances have a previous one in their dialogue, the first of each has none
    assert sum(p for p, _ in context_rows) > 0 and sum(a for _, a in context_rows) > 0
    assert scored and all({"audio_context", "audio_context_mask"} <= keys for keys in scored)  # scored with it too

    meta = json.loads((run / "checkpoint.json").read_text())
    model = meta["model"]
    assert model["name"] == "gao_dialogue"
    assert model["config"]["modalities"] == ["text", "audio"] and model["config"]["context"] == 1
    assert meta["data"]["n"]["test"] == 2 and meta["metrics"]["test"]["n"] == 2
    for split in ("val", "test"):
        assert 0.0 <= meta["metrics"][split]["accuracy"] <= 1.0


def test_speaker_prefix_embeds_speaker_colon_text_beside_the_plain_cache_entries(meld, tmp_path):
    from avemo.cache import FeatureCache
    from avemo.datasets.text import speaker_prefixed
    from avemo.features import get_extractor
    from avemo.models import InputSpec
    from avemo.training.data import gather

    assert speaker_prefixed("We were on a break!", " Ross  Geller ") == "Ross Geller: We were on a break!"
    assert speaker_prefixed("Hi.", None) == "Hi." and speaker_prefixed("Hi.", " ") == "Hi."
    data = load_data("meld", meld)
    _, dev, _, _ = resolve_split(data)
    plain = InputSpec("text", "minilm", {}, (None,), "vector")
    prefixed = InputSpec("text", "minilm", {}, (None,), "vector", speaker_prefix=True)
    cache_root = tmp_path / "cache"
    cache = FeatureCache(cache_root)
    first = gather(dev, {"text": plain}, cache=cache)
    stored = {p: p.read_bytes() for p in cache_root.rglob("*.npz")}
    second = gather(dev, {"text": prefixed}, cache=cache)
    clips = [next(iter(t)) for t in dev]
    texts = [f"{c.speaker}: {c.text}" for c in clips]
    assert {c.speaker for c in clips} == {"Ross", "Rachel"} and all(":" not in c.text for c in clips)
    want = get_extractor("minilm").from_texts(texts)
    for got, ref, other in zip(second.inputs["text"], want, first.inputs["text"], strict=True):
        np.testing.assert_allclose(got, ref["x"], atol=1e-6)
        assert not np.allclose(got, other, atol=1e-3)  # the name changes the embedding
    entries = {p: p.read_bytes() for p in cache_root.rglob("*.npz")}
    assert len(entries) == len(stored) + len(set(texts))  # own entries, keyed by the prefixed text
    assert all(entries[p] == b for p, b in stored.items())  # the plain entries are kept as they were
    with pytest.raises(ConfigError, match="speaker_prefix is for text inputs"):
        InputSpec("audio", "mfcc", {}, (None, None), "sequence", speaker_prefix=True)


def test_cli_trains_a_speaker_prefixed_text_model_and_the_text_expert_refuses_it(meld, tmp_path):
    from avemo.inference.text_emotion import TextEmotion

    runner = CliRunner()
    run = tmp_path / "run"
    config = {"modalities": ["text"], "context": 1, "text_feature": "minilm", "text_kind": "vector",
              "speaker_prefix": True, "d_model": 16, "heads": 2}
    cache = ["--cache", str(tmp_path / "cache"), "--workers", "1"]
    result = runner.invoke(app, [
        "train", "--dataset", "meld", "--root", str(meld), "--model", "gao_dialogue",
        "--model-config", json.dumps(config), "--epochs", "1", "--out", str(run), "--device", "cpu", *cache,
    ])
    assert result.exit_code == 0, result.output
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["inputs"]["text"]["speaker_prefix"] is True
    out = tmp_path / "dev.json"
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(run), "--dataset", "meld", "--root", str(meld),
                                 "--split", "dev", "--json", str(out), *cache])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["weighted_f1"] == pytest.approx(meta["metrics"]["val"]["weighted_f1"])
    with pytest.raises(CheckpointError, match="speaker_prefix"):
        TextEmotion.load(run)


def test_train_refuses_data_without_the_models_inputs_in_one_line(meld, tmp_path, avemo_main):
    """MELD's CSVs carry text only: a model that needs audio (gao_dialogue's default inputs) is refused
    naming what the clips carry and the missing audio, not with an unrelated "every speaker would be
    a validation speaker"; with several corpora, a corpus none of whose clips has the inputs is named
    (it used to end in a ValueError traceback while picking its validation speaker). A model that
    trains on any subset of its modalities is told how to pick those the clips carry."""
    import soundfile as sf

    common = ["--epochs", "1", "--device", "cpu", "--cache", tmp_path / "cache", "--workers", "1"]
    code, _, err = avemo_main("train", "--dataset", "meld", "--root", meld, "--model", "gao_dialogue",
                              "--out", tmp_path / "run1", *common)
    line = err.strip().splitlines()[-1]
    assert code == 2 and line.startswith(f"avemo: error: {meld}: no take has every input the model needs")
    assert "its clips carry text" in line and "has no audio file" in line and "validation speaker" not in err
    assert line.endswith("""gao_dialogue trains on any subset of ['text', 'audio', 'video'], e.g. those the clips """
                         """carry: --model-config '{"modalities": ["text"]}'""")
    rng = np.random.default_rng(0)  # a recording of its own for each file (one under two speakers is refused)
    for name, text in (("talk", True), ("mute", False)):  # two folder corpora; "mute" has no transcripts
        folder = tmp_path / name
        folder.mkdir()
        rows = ["path,emotion,speaker" + (",text" if text else "")]
        for i in range(6):
            sf.write(folder / f"{i}.wav", 0.01 * rng.standard_normal(1600).astype(np.float32), 16000)
            rows.append(f"{i}.wav,{['happy', 'sad'][i % 2]},s{i % 3}" + (f",{WORDS[i]} words" if text else ""))
        (folder / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "corpora.toml").write_text("".join(f'[[corpora]]\ndataset = "folder"\nroot = "{n}"\nname = "{n}"\n\n'
                                                   for n in ("talk", "mute")))
    config = {"modalities": ["text"], "text_feature": "minilm", "text_kind": "vector", "d_model": 16, "heads": 2}
    code, _, err = avemo_main("train", "--corpora", tmp_path / "corpora.toml", "--model", "gao_dialogue",
                              "--model-config", json.dumps(config), "--out", tmp_path / "run2", *common)
    line = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err, err
    assert line.startswith(f"avemo: error: {tmp_path / 'mute'}: corpus mute: no take has every input the model needs")
    assert "its clips carry audio" in line and "has no text" in line and "e.g. those the clips carry" not in line
    assert not (tmp_path / "run1").exists() and not (tmp_path / "run2").exists()


def test_train_counts_the_takes_that_have_the_models_inputs(meld, tmp_path, avemo_main):
    """MELD with media files for some utterances only, and a model that reads audio: the line before
    training counts the takes that train and validate (those with a media file), as the checkpoint
    does, not every take of the speakers that have one (it said 23 training, 10 validation for 6 and 2)."""
    import soundfile as sf

    rng = np.random.default_rng(0)  # a recording of its own for each utterance (one under two speakers is refused)
    for folder, dialogue, turns in (("train_splits", 0, range(6)), ("dev_splits_complete", 1, range(2))):
        (meld / folder).mkdir()
        for u in turns:
            sf.write(meld / folder / f"dia{dialogue}_utt{u}.wav", 0.01 * rng.standard_normal(1600).astype(np.float32),
                     16000)
    audio = {"n_mels": 16, "hidden": 8, "lstm_layers": 1, "linear_layers": 1}
    config = {"modalities": ["text", "audio"], "context": 1, "text_hidden": 8, "d_model": 16, "heads": 2,
              "audio_config": audio}
    run = tmp_path / "run"
    code, _, err = avemo_main("train", "--dataset", "meld", "--root", meld, "--model", "gao_dialogue",
                              "--model-config", json.dumps(config), "--epochs", "1", "--out", run,
                              "--device", "cpu", "--cache", tmp_path / "cache", "--workers", "1")
    assert code == 0, err
    assert json.loads((run / "checkpoint.json").read_text())["data"]["n"] == {"train": 6, "val": 2, "test": 0}
    assert "gao_dialogue: 6 training, 2 validation, 0 test takes" in err


def test_train_help_says_how_to_set_the_dialogue_context_and_where_the_options_are(avemo_main, monkeypatch):
    """--model-config said only "JSON or a TOML/YAML/JSON file": nothing named gao_dialogue's context, its
    default or where a model's options are listed; evaluate's --split and --protocol did not say their defaults."""
    monkeypatch.setenv("COLUMNS", "400")  # one help line per option
    code, out, _ = avemo_main("train", "--help")
    line = " ".join(next(line for line in out.splitlines() if "--model-config" in line).split())
    assert code == 0 and '"context": 3' in line and "context: the H previous utterances" in line
    assert "default 0" in line and 'model_info(NAME)["config"]' in line
    code, out, _ = avemo_main("evaluate", "--help")  # the defaults of --split and --protocol, which were unsaid
    lines = {name: " ".join(next(line for line in out.splitlines() if name in line).split())
             for name in ("--split", "--protocol")}
    assert code == 0 and "default: every take the folder has, of all its splits" in lines["--split"]
    assert "Default: the checkpoint's, when it trained on one of them; else iemocap4" in lines["--protocol"]


def test_a_dialogue_context_model_is_refused_on_some_speakers_of_a_dialogue(meld, tmp_path, avemo_main):
    """--speakers keeps some speakers' turns of a dialogue: a model with dialogue context read the
    chosen speakers' previous lines as the context (the same utterances scored otherwise than on the
    whole corpus). Refused in one line, in train and evaluate; a model without context is not."""
    common = ["--device", "cpu", "--cache", tmp_path / "cache", "--workers", "1"]
    config = {"modalities": ["text"], "text_hidden": 8, "d_model": 16, "heads": 2}
    code, _, err = avemo_main("train", "--dataset", "meld", "--root", meld, "--speakers", "Ross", "--model",
                              "gao_dialogue", "--model-config", json.dumps({**config, "context": 1}), "--epochs", "1",
                              "--out", tmp_path / "cut", *common)
    assert code == 2 and not (tmp_path / "cut").exists()
    assert err.strip().splitlines()[-1] == (
        f"avemo: error: {meld}: the speakers read keep only some turns of 6 dialogue(s) (e.g. dev:0), and a model "
        "with dialogue context (H = 1) reads each utterance's previous turns, whoever said them: read every "
        "speaker (--speakers all)")
    runs = {}
    for context in (0, 1):
        runs[context] = tmp_path / f"h{context}"
        code, _, err = avemo_main("train", "--dataset", "meld", "--root", meld, "--model", "gao_dialogue",
                                  "--model-config", json.dumps({**config, "context": context}), "--epochs", "1",
                                  "--out", runs[context], *common)
        assert code == 0, err
    evaluate = ["evaluate", "--dataset", "meld", "--root", meld, "--split", "dev", "--speakers", "Ross", *common[2:]]
    code, _, err = avemo_main(*evaluate, "--checkpoint", runs[1])
    assert code == 2 and "only some turns of 2 dialogue(s) (e.g. dev:0)" in err.strip().splitlines()[-1]
    code, out, err = avemo_main(*evaluate, "--checkpoint", runs[0])
    assert code == 0 and out.startswith("6 takes: accuracy"), err


def test_the_official_split_names_the_partition_and_the_meld_csv_it_lacks(meld):
    """A MELD folder whose dev CSV has only its header: the refusal names the missing partition and its
    CSV (it said "needs train and dev takes; found ['train']" beside a dev_sent_emo.csv)."""
    (meld / "dev_sent_emo.csv").write_text(",".join(HEADER) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as refused:
        resolve_split(load_data("meld", meld))
    assert refused.value.reason == ("the official split trains on train takes and selects on dev takes: no dev takes "
                                    "here (only train); MELD reads them from dev_sent_emo.csv: missing or no usable row")


def test_meld_with_a_corpus_without_an_official_split_names_how_to_split_them(meld, tmp_path):
    """MELD and IEMOCAP in one run: the refusal said "split it by a fold plan", and a plan's folds cut
    MELD's dialogues (a leakage error); it now names the way that works, validation speakers."""
    from avemo.training.corpora import CorpusSpec
    from avemo.training.experiment import load_corpora
    from test_datasets_iemocap import SESSION1, _other_session, _write_session

    root = tmp_path / "IEMOCAP_full_release"
    _write_session(root, 1, SESSION1)
    for n in range(2, 6):
        _write_session(root, n, _other_session(n))
    data = load_corpora([CorpusSpec("meld", meld), CorpusSpec("iemocap", root)])
    with pytest.raises(DatasetError) as refused:
        resolve_split(data)
    assert refused.value.reason.startswith("meld has an official split and iemocap has none: ")
    assert "name the validation speakers (--val-speakers;" in refused.value.reason and "fold plan" not in refused.value.reason
    train, val, test, _ = resolve_split(data, val_speakers=["Ses05F", "Ses05M"])
    assert {t.speaker for t in val} == {"iemocap:Ses05F", "iemocap:Ses05M"} and not test
    assert {t.dataset for t in train} == {"meld", "iemocap"}


def test_iemocap_without_its_utterance_videos_says_where_they_come_from(tmp_path, avemo_main):
    """gao_dialogue's default inputs (text, audio, video) on IEMOCAP without --media: the refusal names
    ``avemo prepare`` and --media, the way to give the utterances video (it offered only to leave video out)."""
    from test_datasets_iemocap import SESSION1, _other_session, _write_session

    root = tmp_path / "IEMOCAP_full_release"
    _write_session(root, 1, SESSION1)
    for n in range(2, 6):
        _write_session(root, n, _other_session(n))
    code, _, err = avemo_main("train", "--dataset", "iemocap", "--root", root, "--model", "gao_dialogue",
                              "--epochs", "1", "--out", tmp_path / "run", "--device", "cpu",
                              "--cache", tmp_path / "cache", "--workers", "1")
    line = err.strip().splitlines()[-1]
    assert code == 2 and "has no video file" in line
    assert "IEMOCAP's utterance videos: avemo prepare --dataset iemocap --root RELEASE --out DIR, then --media DIR" in line


@pytest.mark.shared_data
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_corpus_without_dialogues_is_refused_for_a_model_with_context_before_it_is_transcribed(
        command, meld, ravdess_subset, avemo_main, monkeypatch, tmp_path):
    """gao_dialogue with context 1 and --transcribe on RAVDESS: every clip was transcribed (about half a
    second each), then 'take ... has no dialogue and turn'. Now the corpus is refused once read."""
    from avemo.training import transcripts

    root, cache, run = ravdess_subset(("01", "02"), step=30), tmp_path / "c", tmp_path / "run"
    model = ["--model", "gao_dialogue", "--model-config", '{"modalities": ["text"], "context": 1}']
    if command == "train":
        args = ["--root", root, *model, "--out", run]
    else:
        code, _, err = avemo_main("train", "--dataset", "meld", "--root", meld, *model, "--epochs", "1",
                                  "--out", run, "--cache", cache)
        assert code == 0, err
        args = ["--checkpoint", run, "--root", root, "--dataset", "ravdess"]

    def transcribed(*args, **kwargs):
        raise AssertionError("transcribed a corpus the model cannot read")

    monkeypatch.setattr(transcripts, "transcribe_missing", transcribed)
    code, _, err = avemo_main(command, *args, "--transcribe", "--cache", cache)
    assert code == 2 and "03-01-01-01-01-01-01.flac has no dialogue and turn (the model reads the 1 previous" in err, err
