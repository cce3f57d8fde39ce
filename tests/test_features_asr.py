"""Speech recognition: Whisper's NumPy front end, chunking, words, transcripts, no speech, errors."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

from avemo.errors import ConfigError, FeatureError, MediaError
from avemo.features.audio import asr
from avemo.features.audio.asr import Segment, TranscribeConfig, Transcript, Word, plan_chunks, transcribe
from avemo.features.audio.whisper_mel import log_mel

SR = 16000


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower().replace("'", "")).split())


def no_speech_signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    white = 0.3 * rng.standard_normal(3 * SR)
    brown = np.cumsum(rng.standard_normal(3 * SR))
    brown = 0.3 * (brown - brown.mean()) / np.abs(brown - brown.mean()).max()
    return {
        "silence": np.zeros(3 * SR),
        "white noise": white,
        "brown noise": brown,
        "hum": 0.2 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 100 * t),
        "clicks": np.where(np.arange(3 * SR) % 4000 == 0, 0.9, 0.0) + 0.001 * rng.standard_normal(3 * SR),
    }


# ----------------------------------------------------------------------------- front end
@pytest.mark.parametrize("samples", [SR, 3 * SR + 77, 3 * SR + 250])
def test_log_mel_matches_the_torch_encoder_front_end(samples):
    import torch

    from avemo.features.audio.whisper_encoder import WhisperEncoder

    encoder = WhisperEncoder(layers=1)  # the front end does not depend on the weights
    y = (0.1 * np.random.default_rng(samples).standard_normal(samples)).astype(np.float32)
    ref = encoder.log_mel(torch.from_numpy(y)[None])[0].numpy()
    np.testing.assert_allclose(log_mel(y), ref, atol=1e-5)
    for frames in (len(y) // 160, 800, 3000):  # padded with silence, as Whisper pads towards 30 s
        padded = np.pad(y, (0, frames * 160 - len(y) + 400))
        ref = encoder.log_mel(torch.from_numpy(padded)[None])[0, :, :frames].numpy()
        out = log_mel(y, frames=frames)
        assert out.shape == (80, frames)
        np.testing.assert_allclose(out, ref, atol=1e-5)


def test_log_mel_rejects_too_little_audio():
    with pytest.raises(ValueError, match="at least 160 samples"):
        log_mel(np.zeros(100, np.float32))


# ----------------------------------------------------------------------------- chunks and records
def test_plan_chunks_joins_close_regions_and_cuts_long_ones():
    config = TranscribeConfig(context=4.0, merge_gap=1.0)  # chunks of at most 26 s
    probs = np.full(int(100 / 0.032), 0.9, np.float32)
    probs[int(40.0 / 0.032)] = 0.0  # the least speech-like frame of the 60 s region
    regions = [(0.5, 2.0), (2.5, 4.0), (10.0, 12.0), (20.0, 80.0)]
    chunks = plan_chunks(regions, probs, config)
    assert chunks[:2] == [(0.5, 4.0), (10.0, 12.0)]  # 0.5 s apart: joined; 6 s apart: not
    assert chunks[2] == (20.0, pytest.approx(40.0))
    assert chunks[-1][1] == 80.0
    assert all(b - a <= 26.0 + 1e-9 and a < b for a, b in chunks)
    assert all(chunks[i][1] <= chunks[i + 1][0] for i in range(len(chunks) - 1))
    assert [c for c in chunks if c[0] >= 20.0][0][0] == 20.0 and sum(b - a for a, b in chunks[2:]) == pytest.approx(60.0)


def test_transcript_between_takes_the_words_whose_middle_falls_in_the_window():
    words = (Word("dogs", 0.8, 1.3, 0.9), Word("are", 1.3, 1.6, 0.9), Word("sitting", 1.6, 2.0, 0.9))
    t = Transcript("Dogs are sitting", "en", None, (Segment(0.8, 2.0, "Dogs are sitting", words),))
    assert t.between(0.0, 1.0) == ""
    assert t.between(0.5, 1.5) == "dogs are"
    assert t.between(1.1, 2.1) == "are sitting"
    assert t.between(2.0, 3.0) == ""
    assert t.words == words
    untimed = Transcript("hallo", "de", 0.9, (Segment(1.0, 2.0, "hallo"),))
    assert untimed.between(1.0, 2.0) == "hallo" and untimed.between(0.0, 1.0) == ""
    d = t.to_dict()
    assert d["text"] == "Dogs are sitting" and d["segments"][0]["words"][1] == {
        "text": "are", "start": 1.3, "end": 1.6, "probability": 0.9}
    assert Transcript().to_dict() == {"text": "", "language": None, "language_probability": None, "segments": []}


def test_pieces_repeated_into_the_padding_are_dropped():
    eot, t0 = 50257, 50364  # <|endoftext|>, <|0.00|>; a time token every 20 ms after it
    at = {s: t0 + int(round(s * 50)) for s in (0.0, 0.5, 1.0, 2.0, 3.0)}
    # "a b" said in 0-1 s of a 1.08 s chunk, then repeated into the padding
    looped = [at[0.0], 1, 2, at[1.0], at[1.0], 1, 2, at[2.0], at[2.0], 1, 2, at[3.0], eot]
    assert asr.speech_pieces(looped, eot, t0, 1.08) == [1, 2]
    # the first piece is kept even when Whisper ends it past the speech (0-2 s for 0.96 s)
    assert asr.speech_pieces([at[0.0], 1, 2, 3, at[2.0], eot], eot, t0, 0.96) == [1, 2, 3]
    # two pieces inside the speech, and a last one left open (no closing time)
    assert asr.speech_pieces([at[0.0], 1, at[0.5], at[0.5], 2, at[1.0], 3], eot, t0, 2.5) == [1, 2, 3]
    assert asr.speech_pieces([1, 2, eot], eot, t0, 1.0) == [1, 2]  # decoded without timestamps
    assert asr.speech_pieces([50362, 1, eot], eot, t0, 1.0) == [1]  # other special tokens are skipped


def test_compression_ratio_flags_repetition():
    assert asr.compression_ratio("Dogs are sitting by the door.") < 2.4
    assert asr.compression_ratio(" Dogs are sitting by the door." * 20) > 2.4
    assert asr.compression_ratio("") == 0.0


def test_words_are_split_and_punctuation_attached():
    import tokenizers

    from avemo.features.audio.whisper_weights import package_weight_parts

    tok = tokenizers.Tokenizer.from_file(str(package_weight_parts()[0].parent / "tokenizer.json"))
    eot = tok.token_to_id("<|endoftext|>")
    ids = tok.encode(" Don't forget a jacket, \"please\"!", add_special_tokens=False).ids
    texts, groups = asr.split_words(tok, [*ids, eot], eot, "en")
    assert sum(groups, []) == [*ids, eot]
    assert [t.strip() for t in texts[:3]] == ["Don't", "forget", "a"]
    words = asr.merge_punctuation([Word(t, float(i), i + 0.5, 1.0) for i, t in enumerate(texts[:-1])])
    assert [w.text for w in words] == ["Don't", "forget", "a", "jacket,", '"please"!']
    assert words[-1].start == 5.0  # times of the word, not of its quotation mark
    ja = tok.encode("犬がドアのそばに座っている", add_special_tokens=False).ids
    texts, groups = asr.split_words(tok, [*ja, eot], eot, "ja")
    assert "".join(texts[:-1]) == "犬がドアのそばに座っている" and "\ufffd" not in "".join(texts)


def test_a_character_cut_between_tokens_is_decoded_whole_and_a_cut_end_dropped():
    """Byte-level BPE cuts characters between tokens; a sequence that stops inside one (a hallucination
    on babble cut short) used to end in U+FFFD."""
    from types import SimpleNamespace

    import tokenizers

    from avemo.features.audio.whisper_weights import package_weight_parts

    tok = tokenizers.Tokenizer.from_file(str(package_weight_parts()[0].parent / "tokenizer.json"))
    dog = tok.encode(" yes 犬が", add_special_tokens=False).ids  # 犬 is cut between two tokens
    assert asr.complete_text(tok, dog) == (" yes 犬が", len(dog)) and tok.decode(dog) == " yes 犬が"
    cut = dog[:-2]  # ends with the first bytes of 犬 only: that token is not used
    assert "\ufffd" in tok.decode(cut)
    assert asr.complete_text(tok, cut) == (" yes ", len(cut) - 1)
    recogniser = SimpleNamespace(tokenizer=tok)  # the transcript's text: WhisperRecogniser.text
    assert asr.WhisperRecogniser.text(recogniser, cut) == "yes" and asr.WhisperRecogniser.text(recogniser, dog) == "yes 犬が"
    party = tok.encode(" 🎉 yes", add_special_tokens=False).ids  # " " and the first bytes of 🎉 in one token
    assert asr.complete_text(tok, party[:1]) == (" ", 1)
    assert asr.complete_text(tok, party) == (" 🎉 yes", len(party))
    stray = tok.encode(" é", add_special_tokens=False).ids  # a lone continuation byte in the middle stays U+FFFD
    text, used = asr.complete_text(tok, [*dog[-2:-1], *stray])
    assert text == "\ufffd é" and used == 1 + len(stray)


def test_unsupported_leading_words_are_dropped():
    the = Word("The", 0.77, 0.77, 0.16)  # no time from the alignment, doubted by the decoder
    dogs = Word("dogs", 0.77, 1.29, 0.94)
    a = Word("a", 1.3, 1.3, 0.1)  # the same, but inside the sentence: kept
    assert asr.drop_unsupported_lead([the, dogs, a], 0.5) == [Word("Dogs", 0.77, 1.29, 0.94), a]
    assert asr.drop_unsupported_lead([the, dogs, a], 0.0) == [the, dogs, a]
    sure = Word("Don't", 0.2, 0.2, 0.74)
    assert asr.drop_unsupported_lead([sure, dogs], 0.5) == [sure, dogs]
    assert asr.drop_unsupported_lead([the], 0.5) == []
    little = Word("little", 0.74, 0.80, 0.1)  # 60 ms: kept under the 20 ms limit, dropped under 0.1 s
    assert asr.drop_unsupported_lead([little, dogs], 0.5) == [little, dogs]
    assert asr.drop_unsupported_lead([little, dogs], 0.5, 0.1) == [dogs]


def test_config_is_checked():
    with pytest.raises(ConfigError, match="compute_type"):
        TranscribeConfig(compute_type="float8")
    with pytest.raises(ConfigError, match="beam_size"):
        TranscribeConfig(beam_size=0)
    with pytest.raises(ConfigError, match="max_chunk"):
        TranscribeConfig(max_chunk=60)
    with pytest.raises(ConfigError, match="unsupported_probability"):
        TranscribeConfig(unsupported_probability=2)
    with pytest.raises(ConfigError, match="unsupported_duration"):
        TranscribeConfig(unsupported_duration=-0.1)


# ----------------------------------------------------------------------------- recognition
@pytest.mark.shared_data
def test_ravdess_clip_says_its_sentence(ravdess_video):
    done: list[float] = []
    result = asr.transcribe_file(ravdess_video, progress=done.append)
    assert normalise(result.text) == "dogs are sitting by the door"
    assert done and done == sorted(done) and done[-1] <= 4.02
    assert result.language == "en" and result.language_probability > 0.5
    words = result.words
    assert [normalise(w.text) for w in words] == "dogs are sitting by the door".split()
    assert all(0.0 <= w.start <= w.end <= 4.02 for w in words)
    assert all(words[i].start <= words[i + 1].start for i in range(len(words) - 1))
    assert 0.5 < words[0].start < 1.3 and 2.3 < words[-1].end < 3.4  # speech runs from about 0.9 s to 3 s
    # each word lies in the windows that hold its middle: 1 s windows every 0.5 s give every word twice
    windows = [result.between(k * 0.5, k * 0.5 + 1.0) for k in range(8)]
    assert sum(len(w.split()) for w in windows) == 2 * len(words)
    assert result.to_dict()["segments"][0]["text"] == result.text


@pytest.mark.shared_data
def test_language_option_and_resampling(ravdess_video, shared_data):
    from avemo.media import load_audio

    y = load_audio(ravdess_video, sr=SR)
    given = transcribe(y, language="en")
    assert given.language == "en" and given.language_probability is None
    y44 = load_audio(ravdess_video, sr=44100)
    assert normalise(transcribe(y44, 44100, language="en").text) == normalise(given.text)
    german = asr.transcribe_file(shared_data / "emodb" / "wav" / "03a01Fa.wav")  # "Der Lappen liegt auf dem Eisschrank"
    assert german.language == "de"
    assert "liegt auf dem eisschrank" in normalise(german.text)


@pytest.mark.parametrize("kind", sorted(no_speech_signals()))
def test_no_speech_gives_an_empty_transcript(kind):
    result = transcribe(no_speech_signals()[kind])
    assert result == Transcript()
    assert result.text == "" and result.segments == () and result.between(0, 3) == ""


def test_files_without_speech_or_audio_give_empty_transcripts(make_clip):
    assert asr.transcribe_file(make_clip("silent.wav", duration=1.0, audio="silence")) == Transcript()
    assert asr.transcribe_file(make_clip("noise.mp4", duration=1.0, audio="noise")) == Transcript()
    assert asr.transcribe_file(make_clip("mute.mp4", duration=1.0, audio=None), language="en") == Transcript(language="en")


def test_bad_input_is_one_line(tmp_path):
    with pytest.raises(FeatureError, match="mono"):
        transcribe(np.zeros((2, SR), np.float32))
    with pytest.raises(FeatureError, match="NaN"):
        transcribe(np.full(SR, np.nan, np.float32))
    with pytest.raises(ConfigError, match="does not know the language 'xx'.*en"):
        transcribe(np.zeros(SR, np.float32), language="xx")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(MediaError) as info:
        asr.transcribe_file(broken)
    assert "\n" not in str(info.value) and "broken.mp4" in str(info.value)
    assert transcribe(np.zeros(10, np.float32)) == Transcript()  # too short to hold speech


@pytest.mark.shared_data
def test_one_model_serves_threads(ravdess_video):
    from avemo.media import load_audio

    y = load_audio(ravdess_video, sr=SR)
    models, texts = [], []

    def work():
        models.append(asr.load_recogniser())
        texts.append(transcribe(y, language="en").text)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(texts) == 3 and len(set(texts)) == 1
    assert all(m is models[0] for m in models)
