"""Tests of the audio feature extractors (avemo.features.audio)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soxr

from avemo import config as cfg
from avemo.errors import ConfigError, FeatureError, MediaError, MissingStreamError
from avemo.features import extractor_class, get_extractor, list_extractors
from avemo.features.audio import egemaps as egemaps_module
from avemo.features.audio.mfcc import deltas
from avemo.features.audio.pyaa34 import CHROMA_CLASSES, FEATURE_NAMES
from avemo.features.audio.spectrogram import mel_filterbank
from avemo.media import load_audio
from avemo.media.synth import synth_audio

SR = 16000
#: the audio extractors of the registry computed from the signal here; the pretrained Whisper encoder
#: (16 kHz only, no minimum length) has its own tests against a reference (test_features_whisper.py)
AUDIO_EXTRACTORS = [n for n in list_extractors("audio")
                    if extractor_class(n).__module__.startswith("avemo.") and n != "whisper_base"]


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    """2 s of the synthetic harmonic 'voice' at 16 kHz."""
    return synth_audio(2.0, SR, "voice", seed=3)[:, 0]


@pytest.fixture(scope="module")
def real_clips(ravdess_speech_root) -> list[np.ndarray]:
    """Three real RAVDESS clips (two actors, neutral / angry / sad), mono 16 kHz."""
    paths = [
        ravdess_speech_root / "Actor_01" / "03-01-01-01-01-01-01.flac",
        ravdess_speech_root / "Actor_01" / "03-01-05-02-01-01-01.flac",
        ravdess_speech_root / "Actor_02" / "03-01-04-01-02-01-02.flac",
    ]
    return [load_audio(p) for p in paths]


def tone(freq: float, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return amplitude * np.sin(2 * np.pi * freq * t)


def harmonic(f0: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    y = sum((0.6 / k) * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 12) if k * f0 < SR / 2)
    return 0.5 * y / np.abs(y).max()


# --- registry and configuration ----------------------------------------------------------


def test_registry_lists_the_audio_extractors():
    assert set(AUDIO_EXTRACTORS) <= set(list_extractors("audio"))
    assert not set(AUDIO_EXTRACTORS) & set(list_extractors("video"))
    for name in AUDIO_EXTRACTORS:
        cls = extractor_class(name)
        assert cls.name == name and cls.modality == "audio" and cls.summary
        assert dataclasses.is_dataclass(cls.Config)
        assert cls.Config().sample_rate == SR


@pytest.mark.parametrize("name", AUDIO_EXTRACTORS)
def test_config_round_trip(name):
    extractor = get_extractor(name)
    data = cfg.to_dict(extractor.config)
    assert cfg.from_dict(type(extractor.config), data) == extractor.config
    rebuilt = get_extractor(name, data)
    assert rebuilt.config == extractor.config
    assert rebuilt.cache_spec() == extractor.cache_spec()
    assert cfg.stable_hash(get_extractor(name, sample_rate=22050).cache_spec()) != cfg.stable_hash(
        extractor.cache_spec()
    )
    with pytest.raises(ConfigError, match="unknown option"):
        get_extractor(name, {"no_such_option": 1})


def test_config_field_names_are_the_agreed_ones():
    fields = {
        name: {f.name for f in dataclasses.fields(extractor_class(name).Config)} for name in AUDIO_EXTRACTORS
    }
    assert {"sample_rate", "n_mfcc", "n_mels", "win_ms", "hop_ms", "fmin", "fmax", "deltas"} <= fields["mfcc"]
    assert {"sample_rate", "n_mels", "win_ms", "hop_ms", "fmin", "fmax"} <= fields["logmel"]
    assert {"sample_rate", "win_ms", "hop_ms"} <= fields["pyaa34"]
    assert {"sample_rate", "win_ms", "hop_ms", "fmin", "fmax"} <= fields["pitch_energy"]


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("mfcc", {"n_mfcc": 80, "n_mels": 64}, "n_mfcc"),
        ("mfcc", {"fmax": 9000.0}, "fmax"),
        ("mfcc", {"delta_width": 4}, "delta_width"),
        ("mfcc", {"n_fft": 256}, "n_fft"),
        ("logmel", {"fmin": 500.0, "fmax": 400.0}, "fmin"),
        ("pitch_energy", {"win_ms": 20.0}, "two periods"),
        ("pitch_energy", {"fmax": 9000.0}, "fmax"),
        ("pyaa34", {"win_ms": 5.0}, "too short"),
        ("egemaps", {"sample_rate": 4000}, "sample_rate"),
    ],
)
def test_invalid_configs_are_config_errors(name, options, message):
    with pytest.raises(ConfigError, match=message):
        get_extractor(name, **options)


# --- shapes, short input, silence, bad input ---------------------------------------------


def test_output_shapes(voice):
    n = len(voice)  # 32000 samples
    expected = {
        "mfcc": (1 + n // 160, 120),
        "logmel": (1 + n // 160, 64),
        "egemaps": (88,),
        "pyaa34": (1 + (n - 800) // 400, 34),
        "pitch_energy": (1 + n // 160, 4),
    }
    for name, shape in expected.items():
        x = get_extractor(name).from_signal(voice, SR)["x"]
        assert x.shape == shape, name
        assert x.dtype == np.float32 and np.isfinite(x).all(), name
    lld = get_extractor("egemaps_lld").from_signal(voice, SR)["x"]
    assert lld.shape[1] == 25 and abs(lld.shape[0] - n // 160) <= 6
    assert get_extractor("mfcc", deltas=False, n_mfcc=13).from_signal(voice, SR)["x"].shape == (
        1 + n // 160,
        13,
    )
    assert get_extractor("logmel", n_mels=40).from_signal(voice, SR)["x"].shape == (1 + n // 160, 40)


def test_frame_times_follow_the_hop(voice):
    for name, first, step in [
        ("mfcc", 0.0, 0.01),
        ("logmel", 0.0, 0.01),
        ("pitch_energy", 0.0, 0.01),
        ("pyaa34", 0.025, 0.025),
        ("egemaps_lld", 0.0, 0.01),
    ]:
        extractor = get_extractor(name)
        x = extractor.from_signal(voice, SR)["x"]
        times = extractor.frame_times(len(x))
        assert len(times) == len(x)
        assert times[0] == pytest.approx(first) and np.diff(times) == pytest.approx(step)


@pytest.mark.parametrize("name", AUDIO_EXTRACTORS)
def test_a_short_clip_gives_frames(name, voice):
    x = get_extractor(name).from_signal(voice[: int(0.2 * SR)], SR)["x"]
    assert x.size > 0 and (x.ndim == 1 or x.shape[0] >= 1)
    assert np.isfinite(x).all()


@pytest.mark.parametrize("name", AUDIO_EXTRACTORS)
def test_too_short_is_a_clear_feature_error(name):
    with pytest.raises(FeatureError, match=r"too short: 0\.010 s, need 0\.\d+ s") as excinfo:
        get_extractor(name).from_signal(np.zeros(160, dtype=np.float32), SR)
    assert name in str(excinfo.value) and "\n" not in str(excinfo.value)


@pytest.mark.parametrize("name", AUDIO_EXTRACTORS)
def test_silence_gives_finite_features(name):
    x = get_extractor(name).from_signal(np.zeros(SR, dtype=np.float32), SR)["x"]
    assert np.isfinite(x).all()


@pytest.mark.parametrize("name", AUDIO_EXTRACTORS)
def test_bad_signals_are_feature_errors(name, voice):
    extractor = get_extractor(name)
    broken = voice.copy()
    broken[100] = np.nan
    with pytest.raises(FeatureError, match="NaN"):
        extractor.from_signal(broken, SR)
    with pytest.raises(FeatureError, match="mono"):
        extractor.from_signal(np.stack([voice, voice]), SR)


@pytest.mark.parametrize("name", ["mfcc", "pyaa34", "pitch_energy"])
def test_other_sample_rates_are_resampled(name, voice):
    y48 = soxr.resample(voice, SR, 48000, quality="HQ")
    extractor = get_extractor(name)
    direct = extractor.from_signal(y48, 48000)["x"]
    via_16k = extractor.from_signal(soxr.resample(y48, 48000, SR, quality="HQ"), SR)["x"]
    np.testing.assert_allclose(direct, via_16k, rtol=1e-5, atol=1e-5)


def test_extract_reads_any_container(make_clip):
    path = make_clip("stereo8k.wav", duration=1.0, sample_rate=8000, channels=2)
    extractor = get_extractor("mfcc")
    x = extractor.extract(path)["x"]
    np.testing.assert_array_equal(x, extractor.from_signal(load_audio(path), SR)["x"])
    assert x.shape == (101, 120)


def test_extract_errors_name_the_file(make_clip, tmp_path):
    short = make_clip("tiny.wav", duration=0.01)
    with pytest.raises(FeatureError) as excinfo:
        get_extractor("pyaa34").extract(short)
    assert str(short) in str(excinfo.value) and "too short" in str(excinfo.value)
    with pytest.raises(MissingStreamError):
        get_extractor("mfcc").extract(make_clip("mute.mp4", duration=0.5, size=(64, 48), audio=None))
    with pytest.raises(MediaError, match="file not found"):
        get_extractor("logmel").extract(tmp_path / "missing.flac")


# --- mfcc / logmel -----------------------------------------------------------------------


def test_mel_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    for sr, n_fft, n_mels, fmin, fmax in [(16000, 512, 64, 0.0, 8000.0), (22050, 1024, 40, 50.0, 7000.0)]:
        ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-9)


def _librosa_kwargs():
    return {
        "sr": SR,
        "n_fft": 512,
        "win_length": 400,
        "hop_length": 160,
        "n_mels": 64,
        "fmin": 0.0,
        "fmax": 8000.0,
    }


@pytest.mark.shared_data
def test_mfcc_agrees_with_librosa_on_real_clips(real_clips):
    """Our MFCC vs librosa.feature.mfcc: differences are float32 rounding (librosa computes in float32).

    Values reach +-800 (the 0th coefficient of dB values); 2e-3 absolute is ~1e-5 relative
    to that range. With top_db=80 ours follows librosa.feature.mfcc's own default exactly;
    without it, librosa's mfcc of power_to_db(top_db=None).
    """
    librosa = pytest.importorskip("librosa")
    kwargs = _librosa_kwargs()
    plain = get_extractor("mfcc", deltas=False)
    clipped = get_extractor("mfcc", deltas=False, top_db=80.0)
    for y in real_clips:
        ref_clipped = librosa.feature.mfcc(y=y, n_mfcc=40, **kwargs).T
        np.testing.assert_allclose(clipped.from_signal(y, SR)["x"], ref_clipped, atol=2e-3, rtol=1e-5)
        mel = librosa.feature.melspectrogram(y=y, **kwargs)
        ref_plain = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=40).T
        np.testing.assert_allclose(plain.from_signal(y, SR)["x"], ref_plain, atol=2e-3, rtol=1e-5)
        assert not np.allclose(ref_plain, ref_clipped, atol=1e-2)  # the two references differ: both checked


@pytest.mark.shared_data
def test_logmel_agrees_with_librosa_on_real_clips(real_clips):
    librosa = pytest.importorskip("librosa")
    for y in real_clips:
        ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, **_librosa_kwargs()), top_db=None).T
        np.testing.assert_allclose(get_extractor("logmel").from_signal(y, SR)["x"], ref, atol=1e-3)


def test_mfcc_deltas_are_librosa_deltas(voice):
    librosa = pytest.importorskip("librosa")
    x = get_extractor("mfcc").from_signal(voice, SR)["x"]
    static, delta, delta2 = x[:, :40], x[:, 40:80], x[:, 80:]
    np.testing.assert_allclose(delta, librosa.feature.delta(static.T, order=1).T, atol=1e-3)
    np.testing.assert_allclose(delta2, librosa.feature.delta(static.T, order=2).T, atol=1e-3)
    np.testing.assert_array_equal(static, get_extractor("mfcc", deltas=False).from_signal(voice, SR)["x"])


@pytest.mark.parametrize("frames", [40, 9, 5, 3])
def test_deltas_of_a_ramp_and_a_parabola(frames):
    t = np.arange(frames, dtype=np.float64)[:, None]
    ramp = np.hstack([2.0 * t + 1.0, -0.5 * t])
    np.testing.assert_allclose(deltas(ramp, 9, 1), np.broadcast_to([2.0, -0.5], ramp.shape), atol=1e-9)
    np.testing.assert_allclose(deltas(ramp, 9, 2), 0.0, atol=1e-9)
    parabola = 0.5 * t**2
    np.testing.assert_allclose(deltas(parabola, 9, 2), 1.0, atol=1e-9)


def test_deltas_of_too_few_frames_are_zero():
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    assert np.array_equal(deltas(x, 9, 1), np.zeros_like(x))


def test_logmel_floor_and_loudness():
    floor = get_extractor("logmel").from_signal(np.zeros(SR), SR)["x"]
    assert np.all(floor == -100.0)  # the documented log floor
    quiet = get_extractor("logmel").from_signal(tone(1000.0, amplitude=0.05), SR)["x"]
    loud = get_extractor("logmel").from_signal(tone(1000.0, amplitude=0.5), SR)["x"]
    band = quiet[20:-20].mean(axis=0).argmax()
    assert loud[20:-20, band].mean() - quiet[20:-20, band].mean() == pytest.approx(20.0, abs=0.01)


# --- eGeMAPS -----------------------------------------------------------------------------


def test_egemaps_names():
    functionals = get_extractor("egemaps").feature_names()
    llds = get_extractor("egemaps_lld").feature_names()
    assert len(functionals) == 88 and len(set(functionals)) == 88
    assert len(llds) == 25 and len(set(llds)) == 25
    assert functionals[0] == "F0semitoneFrom27.5Hz_sma3nz_amean"
    assert functionals[-1] == "equivalentSoundLevel_dBp"
    assert "Loudness_sma3" in llds and "F0semitoneFrom27.5Hz_sma3nz" in llds
    assert get_extractor("egemaps").functional_names() == functionals


def test_egemaps_agrees_with_opensmile(voice):
    opensmile = pytest.importorskip("opensmile")
    func = get_extractor("egemaps").from_signal(voice, SR)["x"]
    lld = get_extractor("egemaps_lld").from_signal(voice, SR)["x"]
    ref_func = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals)
    ref_lld = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.LowLevelDescriptors)
    np.testing.assert_array_equal(func, ref_func.process_signal(voice, SR).to_numpy()[0])
    frame = ref_lld.process_signal(voice, SR)
    np.testing.assert_array_equal(lld, frame.to_numpy())
    assert list(frame.columns) == get_extractor("egemaps_lld").feature_names()


def test_egemaps_runs_opensmile_once_for_both_levels(voice, monkeypatch):
    calls = []
    original = egemaps_module._new_smile
    monkeypatch.setattr(egemaps_module, "_new_smile", lambda sr: calls.append(sr) or original(sr))
    y = voice[: SR // 2] * 0.9  # a signal not seen before
    get_extractor("egemaps").from_signal(y, SR)
    get_extractor("egemaps_lld").from_signal(y, SR)
    assert calls == [SR]
    get_extractor("egemaps").from_signal(y * 0.5, SR)
    assert len(calls) == 2


# --- pyaa34 ------------------------------------------------------------------------------


def test_pyaa34_names_and_order():
    names = get_extractor("pyaa34").feature_names()
    assert len(names) == 34 == len(set(names)) == len(FEATURE_NAMES)
    assert names[:8] == [
        "zcr",
        "energy",
        "energy_entropy",
        "spectral_centroid",
        "spectral_spread",
        "spectral_entropy",
        "spectral_flux",
        "spectral_rolloff",
    ]
    assert (
        names[8] == "mfcc_1"
        and names[20] == "mfcc_13"
        and names[21] == "chroma_1"
        and names[-1] == "chroma_std"
    )


@pytest.mark.parametrize("quirks", [True, False])
def test_pyaa34_pure_tone(quirks):
    freq = 880.0  # A5, exactly on an FFT bin of a 50 ms frame
    x = get_extractor("pyaa34", pyaa_quirks=quirks).from_signal(tone(freq), SR)["x"]
    assert np.median(x[:, 0]) == pytest.approx(2 * freq / SR, rel=0.02)  # ZCR
    assert np.median(x[:, 1]) == pytest.approx(0.5, rel=0.01)  # energy of the normalised sinusoid: 1/2
    centroid_hz = np.median(x[:, 3]) * SR / 2
    assert centroid_hz == pytest.approx(freq + (20.0 if quirks else 0.0), abs=1.0)  # quirk: one bin high
    assert np.median(x[:, 4]) < 0.01  # almost no spread
    chroma = x[:, 21:33]
    assert CHROMA_CLASSES[int(np.bincount(chroma.argmax(axis=1)).argmax())] == "A"
    assert np.median(x[:, 6]) < 1e-6  # a steady tone has no flux


@pytest.mark.parametrize("freq, pitch_class", [(440.0, "A"), (660.0, "E"), (1040.0, "C"), (1320.0, "E")])
def test_pyaa34_chroma_without_quirks(freq, pitch_class):
    chroma = get_extractor("pyaa34", pyaa_quirks=False).from_signal(tone(freq), SR)["x"][:, 21:33]
    assert CHROMA_CLASSES[int(np.median(chroma.argmax(axis=1)))] == pitch_class
    assert np.allclose(chroma.sum(axis=1), chroma.sum(axis=1)[0])  # a distribution over classes


def test_pyaa34_silence():
    x = get_extractor("pyaa34").from_signal(np.zeros(SR // 2), SR)["x"]
    assert np.isfinite(x).all()
    assert np.all(x[:, 1] == 0.0)  # energy
    assert np.all(x[:, 21:] == 0.0)  # chroma


def test_pyaa34_agrees_with_pyaudioanalysis(voice):
    st = pytest.importorskip("pyAudioAnalysis.ShortTermFeatures")
    ref, names = st.feature_extraction(voice.astype(np.float64) * 32768, SR, 800, 400, deltas=False)
    assert names == list(FEATURE_NAMES)
    ours = get_extractor("pyaa34").from_signal(voice, SR)["x"]
    np.testing.assert_allclose(ours, ref.T, rtol=1e-5, atol=1e-5)
    # the documented quirk: a 440 Hz tone lands on A# in pyAudioAnalysis's chroma, and in ours
    ref_tone, _ = st.feature_extraction(tone(440.0) * 32768, SR, 800, 400, deltas=False)
    ours_tone = get_extractor("pyaa34").from_signal(tone(440.0), SR)["x"]
    np.testing.assert_allclose(ours_tone, ref_tone.T, rtol=1e-5, atol=1e-5)
    assert CHROMA_CLASSES[int(np.median(ours_tone[:, 21:33].argmax(axis=1)))] == "A#"


@pytest.mark.shared_data
def test_pyaa34_agrees_with_pyaudioanalysis_on_a_real_clip(real_clips):
    st = pytest.importorskip("pyAudioAnalysis.ShortTermFeatures")
    y = real_clips[1]
    ref, _ = st.feature_extraction(y.astype(np.float64) * 32768, SR, 800, 400, deltas=False)
    np.testing.assert_allclose(get_extractor("pyaa34").from_signal(y, SR)["x"], ref.T, rtol=1e-5, atol=1e-5)


# --- pitch_energy ------------------------------------------------------------------------


@pytest.mark.parametrize("f0", [90.0, 147.0, 220.0, 452.0])
def test_pitch_of_a_harmonic_signal(f0):
    x = get_extractor("pitch_energy").from_signal(harmonic(f0), SR)["x"]
    inner = x[5:-5]
    assert np.all(inner[:, 2] > 0)  # voiced throughout
    np.testing.assert_allclose(inner[:, 2], f0, rtol=0.02)
    assert np.all(inner[:, 3] > 0.9)  # strong voicing


def test_pitch_of_noise_is_mostly_unvoiced():
    noise = 0.3 * np.random.default_rng(7).standard_normal(2 * SR)
    x = get_extractor("pitch_energy").from_signal(noise, SR)["x"]
    assert np.mean(x[:, 2] == 0) >= 0.95
    assert np.median(x[:, 0]) > 0.3  # noise crosses zero about every other sample


def test_pitch_energy_zcr_and_rms_of_a_tone():
    x = get_extractor("pitch_energy").from_signal(tone(500.0, amplitude=0.4), SR)["x"][5:-5]
    np.testing.assert_allclose(x[:, 0], 2 * 500.0 / SR, rtol=0.03)
    np.testing.assert_allclose(x[:, 1], 0.4 / np.sqrt(2), rtol=0.01)
    np.testing.assert_allclose(x[:, 2], 500.0, rtol=0.01)


def test_pitch_energy_silence_is_unvoiced_zero():
    x = get_extractor("pitch_energy").from_signal(np.zeros(SR), SR)["x"]
    assert np.all(x == 0.0)


def test_pitch_energy_rows_align_with_mfcc(voice):
    assert len(get_extractor("pitch_energy").from_signal(voice, SR)["x"]) == len(
        get_extractor("mfcc").from_signal(voice, SR)["x"]
    )


def test_block_wise_computation_equals_whole(voice, monkeypatch):
    """Long signals are processed in blocks of frames; block edges must not change any value."""
    from avemo.features.audio import pitch_energy, pyaa34, spectrogram

    names = ["mfcc", "logmel", "pyaa34", "pitch_energy"]
    whole = {name: get_extractor(name).from_signal(voice, SR)["x"] for name in names}
    for module in (spectrogram, pitch_energy, pyaa34):
        monkeypatch.setattr(module, "BLOCK_FRAMES", 7)
    for name in names:
        np.testing.assert_array_equal(
            get_extractor(name).from_signal(voice, SR)["x"], whole[name], err_msg=name
        )
