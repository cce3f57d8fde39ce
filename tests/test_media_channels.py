"""Transmission channels (codecs, telephone, noise, babble, reverberation, gain) on generated signals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.signal import correlate, welch

from avemo.errors import AvemoError, ConfigError, FeatureError
from avemo.media.channels import (
    ChannelUnavailableError,
    CodecConfig,
    apply_channel,
    g711_mulaw,
    list_channels,
    parse_channel,
    room_impulse_response,
    schroeder_rt60,
)

SR = 16000


def _speechlike(seconds=2.0, seed=0):
    """Broadband, amplitude-modulated noise: a signal whose alignment a cross-correlation can find."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.2 * rng.standard_normal(len(t)) * (0.2 + np.sin(2 * np.pi * 3 * t) ** 2)).astype(np.float32)


def _lag(out, ref):
    cc = correlate(out.astype(np.float64), ref.astype(np.float64), mode="full", method="fft")
    return int(cc.argmax()) - (len(ref) - 1)


def _db(a, b):
    return 10 * np.log10(a / b)


@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr", [20.0, 5.0, -3.0])
def test_noise_mixture_has_the_requested_snr(kind, snr):
    y = _speechlike()
    out = apply_channel(y, SR, f"noise:kind={kind}:snr={snr}:reference=mean", seed=3)
    noise = out.astype(np.float64) - y
    assert _db(np.mean(y.astype(np.float64) ** 2), np.mean(noise**2)) == pytest.approx(snr, abs=0.01)


def test_active_level_ignores_silence_and_noise_colours_differ():
    t = np.arange(SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y = np.concatenate([np.zeros(SR, np.float32), tone])  # half silence
    out = apply_channel(y, SR, "noise_white_10db", seed=0)
    noise = out.astype(np.float64) - y
    assert _db(np.mean(tone.astype(np.float64) ** 2), np.mean(noise**2)) == pytest.approx(10.0, abs=0.05)
    # pink and brown noise put more of their power into low frequencies than white noise
    share = {}
    for kind in ("white", "pink", "brown"):
        n = apply_channel(y, SR, f"noise:kind={kind}", seed=0).astype(np.float64) - y
        f, p = welch(n, SR, nperseg=1024)
        share[kind] = p[f < 500].sum() / p.sum()
    assert share["white"] < share["pink"] < share["brown"]
    with pytest.raises(FeatureError, match="silent"):
        apply_channel(np.zeros(SR, np.float32), SR, "noise_white_10db")


def test_babble_mixes_the_callers_talkers_at_the_snr():
    t = np.arange(SR) / SR
    freqs = [300.0, 500.0, 700.0, 1100.0, 1300.0]
    sources = [(0.1 * (1 + i) * np.sin(2 * np.pi * f * t)).astype(np.float32) for i, f in enumerate(freqs)]
    y = _speechlike(1.5)
    out = apply_channel(y, SR, "babble:snr=5:talkers=3:reference=mean", seed=1, sources=sources)
    babble = out.astype(np.float64) - y
    assert _db(np.mean(y.astype(np.float64) ** 2), np.mean(babble**2)) == pytest.approx(5.0, abs=0.01)
    f, p = welch(babble, SR, nperseg=4096)
    peaks = [p[np.argmin(np.abs(f - fr))] for fr in freqs]
    assert sum(pk > 1e-3 * max(peaks) for pk in peaks) == 3  # three of the five talkers, no others
    again = apply_channel(y, SR, "babble:snr=5:talkers=3:reference=mean", seed=1, sources=sources)
    assert np.array_equal(out, again)
    with pytest.raises(ConfigError, match="needs at least 4 source signals"):
        apply_channel(y, SR, "babble_5db", sources=sources[:2])


def test_telephone_band_removes_energy_outside_300_3400_hz():
    y = (0.1 * np.random.default_rng(0).standard_normal(4 * SR)).astype(np.float32)
    out = apply_channel(y, SR, "telephone")
    f, p_out = welch(out, SR, nperseg=2048)
    _, p_in = welch(y, SR, nperseg=2048)

    def band(lo, hi):
        m = (f >= lo) & (f < hi)
        return _db(p_out[m].sum(), p_in[m].sum())

    assert band(400, 3300) == pytest.approx(0.0, abs=0.5)  # the pass band is kept
    assert band(0, 200) < -35 and band(3700, 4000) < -35 and band(4000, 8000) < -90
    assert _lag(out, y) == 0 and len(out) == len(y)


def test_g711_mulaw_agrees_with_the_standard_library():
    with warnings.catch_warnings():  # the reference: in the standard library up to Python 3.12, deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    x = np.random.default_rng(0).uniform(-1, 1, 5000) ** 3
    pcm = np.round(x * 32767).astype("<i2")
    expected = np.frombuffer(audioop.ulaw2lin(audioop.lin2ulaw(pcm.tobytes(), 2), 2), "<i2")
    ours = np.round(g711_mulaw(pcm / 32768.0).astype(np.float64) * 32768.0)  # float32 holds these exactly
    assert np.array_equal(ours, expected)
    assert len(np.unique(g711_mulaw(x))) <= 256


@pytest.mark.parametrize("name", ["mp3_16k", "aac_24k", "opus_12k"])
def test_codec_round_trip_keeps_length_and_alignment_and_degrades(name):
    y = _speechlike(2.0)
    out = apply_channel(y, SR, name)
    assert out.dtype == np.float32 and len(out) == len(y)
    assert abs(_lag(out, y)) <= 2  # samples: the container's encoder delay was removed
    error = out.astype(np.float64) - y
    assert 0 < _db(np.mean(y.astype(np.float64) ** 2), np.mean(error**2)) < 25  # lossy, yet the same signal
    assert np.array_equal(out, apply_channel(y, SR, name))  # deterministic


def test_a_missing_encoder_is_reported_not_replaced():
    with pytest.raises(ChannelUnavailableError, match="has no libnotanencoder encoder") as err:
        apply_channel(_speechlike(0.5), SR, "mp3:encoder=libnotanencoder")
    assert isinstance(err.value, AvemoError) and "\n" not in str(err.value)


def test_reverb_decay_matches_the_rt60_and_is_seeded():
    from pyroomacoustics.experimental import measure_rt60

    for rt60 in (0.3, 0.5):
        h = room_impulse_response(rt60, SR, seed=0, room=1)
        assert np.sum(h.astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-5)
        assert schroeder_rt60(h, SR) == pytest.approx(rt60, rel=0.06)
        assert measure_rt60(h, fs=SR, decay_db=20) == pytest.approx(rt60, rel=0.1)  # pyroomacoustics' own
    y = _speechlike(1.0)
    a = apply_channel(y, SR, "reverb_0.3s", seed=4, item=7)
    assert np.array_equal(a, apply_channel(y, SR, "reverb_0.3s", seed=4, item=7))
    assert not np.allclose(a, apply_channel(y, SR, "reverb_0.3s", seed=5, item=7))
    impulse = np.zeros(SR, np.float32)
    impulse[4000] = 1.0
    assert int(np.argmax(np.abs(apply_channel(impulse, SR, "reverb_0.3s")))) == 4000  # no added delay


def test_gain_is_exact_and_clips_at_full_scale():
    y = _speechlike(0.5)
    quiet = apply_channel(y, SR, "gain_-20db")
    assert np.allclose(quiet, y.astype(np.float64) * 0.1, rtol=1e-6, atol=0)
    assert _db(np.mean(quiet.astype(np.float64) ** 2), np.mean(y.astype(np.float64) ** 2)) == pytest.approx(-20, abs=1e-4)
    loud = apply_channel(y, SR, "gain_+12db")
    assert np.abs(loud).max() == 1.0 and (np.abs(y * 10 ** 0.6) > 1).any()
    inside = np.abs(y * 10 ** 0.6) < 1
    assert np.allclose(loud[inside], y[inside] * 10 ** 0.6, rtol=1e-6)


def test_names_and_specs_round_trip():
    for name in list_channels():
        ch = parse_channel(name)
        assert ch.name == name
        assert parse_channel(ch.spec) == ch
    assert parse_channel("noise:kind=pink:snr=5") == parse_channel("noise_pink_5db")
    assert parse_channel("mp3:kbps=32").name == "mp3_32k"
    assert parse_channel("babble_5db:talkers=8").config.talkers == 8
    assert parse_channel("gain:db=6").name == "gain_+6db"
    table = parse_channel("reverb_0.6s").to_dict()
    assert table == {"kind": "reverb", "config": {"rt60": 0.6, "rooms": 8}} and parse_channel(table).name == "reverb_0.6s"
    with pytest.raises(ConfigError, match="needs 'kind'"):
        parse_channel({"kind": "echo"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("noise_purple_5db", "unknown channel"),
        ("mp4_16k", "unknown channel"),
        ("noise:snr=loud", "snr"),
        ("noise:colour=pink", "unknown option"),
        ("noise:kind=purple", "not one of"),
        ("reverb:rt60=5", "rt60 must be in"),
        ("telephone:low_hz=3500", "low_hz < high_hz"),
        ("gain:db", "is not key=value"),
        ("mp3:kbps=0", "kbps must be in"),
    ],
)
def test_bad_names_and_parameters_are_one_line_errors(text, message):
    with pytest.raises(ConfigError, match=message) as err:
        apply_channel(_speechlike(0.2), SR, text)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("build", [lambda: CodecConfig(kbps=1000), lambda: parse_channel("mp3:kbps=1000")])
def test_a_bad_channel_config_is_a_config_error_that_names_the_channel(build):
    """As the extractors' and models' configs: ConfigError (one line from the CLI), not ValueError."""
    with pytest.raises(ConfigError, match=r"kbps must be in \[1, 512\], got 1000"):
        build()
    try:
        parse_channel("mp3:kbps=1000")
    except ConfigError as exc:
        assert exc.reason.startswith("channel 'mp3:kbps=1000': kbps must be in")
