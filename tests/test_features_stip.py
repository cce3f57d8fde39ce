"""Space-time interest points (avemo.features.stip)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from scipy import ndimage

from avemo.errors import ConfigError, MissingStreamError
from avemo.features import get_extractor, list_extractors
from avemo.features.stip import StipConfig, feature_names, harris3d, local_maxima, stip_from_frames

FAST = {"sigma2": (4.0,), "tau2": (2.0,), "height": 64}  # one scale, small frames: quick tests


def background(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.3 + 0.3 * ndimage.gaussian_filter(rng.random((h, w)), 2)).astype(np.float32)


def blob_frames(n: int, h: int = 64, w: int = 96, move=(20, 40), row: float = 0.5) -> list[np.ndarray]:
    """Gray uint8 frames: a bright blob on a static texture, moving right during frames ``move``."""
    yy, xx = np.mgrid[0:h, 0:w]
    bg = background(h, w)
    frames = []
    for i in range(n):
        progress = (min(max(i, move[0]), move[1]) - move[0]) / (move[1] - move[0])
        cx = 0.2 * w + progress * 0.6 * w
        img = bg + 0.5 * np.exp(-((xx - cx) ** 2 + (yy - row * h) ** 2) / (2 * 4.0**2))
        frames.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    return frames


def write_gray_video(path, frames: list[np.ndarray], fps: float = 25.0):
    h, w = frames[0].shape
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "12"}
        for img in frames:
            rgb = np.repeat(img[:, :, None], 3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_registered_and_config_errors():
    assert "stip" in list_extractors("video")
    with pytest.raises(ConfigError):
        get_extractor("stip", grid=(4, 0, 3))
    with pytest.raises(ConfigError):
        get_extractor("stip", sigma2=())
    with pytest.raises(ConfigError):
        get_extractor("stip", height=4)


def test_harris3d_needs_change_in_time():
    """A still corner has Lt = 0, so det(mu) = 0 and H = -k trace^3 <= 0: no point. So has a corner
    in uniform motion (Lt is a combination of Lx and Ly, mu has rank 2); Harris3D fires where the
    motion starts or stops (Laptev 2005, section 2)."""
    h, w = 48, 48
    img = np.zeros((h, w), np.float32)
    img[16:, 16:] = 1.0  # a corner
    static = np.repeat(img[None], 20, axis=0)
    H, _, _ = harris3d(static, 4.0, 2.0)
    assert H.max() <= 1e-12
    assert len(local_maxima(H, 1e-12)) == 0
    uniform = np.stack([np.roll(img, i - 10, axis=1) for i in range(20)])[:, 8:-8, 12:-12]
    H, _, _ = harris3d(uniform, 4.0, 2.0)
    inner = local_maxima(H, 1e-12, t_range=(5, 15))  # away from the clip's ends (edge extension stops it)
    assert len(inner) == 0
    start_stop = np.stack([np.roll(img, min(max(i - 6, 0), 8), axis=1) for i in range(20)])
    H, _, _ = harris3d(start_stop, 4.0, 2.0)
    points = local_maxima(H, 1e-12)
    assert len(points) > 0
    assert set(points[:, 0]) <= set(range(3, 18))  # around frames 6 (start) and 14 (stop)


def test_static_video_has_no_interest_points(tmp_path):
    frames = [np.clip(background(64, 96) * 255, 0, 255).astype(np.uint8)] * 30
    path = write_gray_video(tmp_path / "static.mp4", frames)
    feats = get_extractor("stip", **FAST).extract(path)
    assert len(feats["points"]) == 0
    assert not feats["x"].any()
    assert int(feats["n_frames"]) == 30


def test_moving_blob_gives_points_where_and_when_it_moves(tmp_path):
    fps = 25.0
    frames = blob_frames(60, move=(20, 40), row=0.3)
    path = write_gray_video(tmp_path / "blob.mp4", frames, fps)
    feats = get_extractor("stip", **FAST).extract(path)
    points = feats["points"]
    assert len(points) > 0
    x, y, t = points[:, 0], points[:, 1], points[:, 2]
    tau = 2.0**0.5 / fps  # the temporal scale, in seconds
    assert np.all((t > 20 / fps - 3 * tau) & (t < 40 / fps + 3 * tau))  # only while it moves
    assert np.all(np.abs(y - 0.3) < 0.15)  # on its row
    assert np.all((x > 0.1) & (x < 0.9))
    names = feature_names(StipConfig(**FAST))
    values = dict(zip(names, feats["x"], strict=True))
    assert values["rate"] == pytest.approx(len(points) / 60)
    # Harris3D fires where the motion starts (left, frame 20) and where it stops (right, frame 40)
    start, stop = t < 30 / fps, t >= 30 / fps
    assert start.any() and stop.any()
    assert np.all(x[start] < 0.4) and np.all(x[stop] > 0.6)
    # the blob's row (y = 0.3) falls in grid row 1 of 4
    density = {k: v for k, v in values.items() if k.startswith("density") and v > 0}
    assert density and all("_r1_" in k for k in density)
    # it moves right: the normal-flow histogram is dominated by directions with a positive x part
    hof = np.array([values[f"hof_{b}"] for b in range(8)])
    assert hof.sum() == pytest.approx(1.0, abs=1e-4)
    rightwards = hof[[0, 1, 6, 7]].sum()  # bins [0, 45), [45, 90), [270, 315), [315, 360) degrees
    assert rightwards > 0.7


def test_descriptor_length_does_not_depend_on_clip_length(tmp_path):
    ex = get_extractor("stip", **FAST)
    short = write_gray_video(tmp_path / "short.mp4", blob_frames(12, move=(2, 10)))
    long = write_gray_video(tmp_path / "long.mp4", blob_frames(90, move=(10, 80)))
    a, b = ex.extract(short), ex.extract(long)
    assert a["x"].shape == b["x"].shape == (len(ex.feature_names()),) == (ex.dim,)
    assert np.isfinite(a["x"]).all() and np.isfinite(b["x"]).all()
    default = StipConfig()
    gx, gy, gt = default.grid
    assert len(feature_names(default)) == gx * gy * gt + 1 + 4 + 2 + 18 + 16


def test_chunked_processing_equals_whole_clip():
    frames = blob_frames(70, move=(5, 65))
    config = StipConfig(**FAST, chunk_frames=1000)
    items = [(i / 25, f) for i, f in enumerate(frames)]
    whole = stip_from_frames(items, config)
    chunked = stip_from_frames(iter(items), StipConfig(**FAST, chunk_frames=7))
    assert len(whole["points"]) > 0
    order_a = np.lexsort(whole["points"][:, :3].T)
    order_b = np.lexsort(chunked["points"][:, :3].T)
    np.testing.assert_allclose(whole["points"][order_a], chunked["points"][order_b], rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(whole["x"], chunked["x"], rtol=1e-4, atol=1e-6)


def test_audio_file_is_rejected(make_clip):
    audio = make_clip("voice.wav")
    with pytest.raises(MissingStreamError, match="has no video stream") as info:
        get_extractor("stip").extract(audio)
    assert str(audio) in str(info.value)


@pytest.mark.shared_data
def test_stip_on_ravdess(ravdess_video):
    ex = get_extractor("stip", duration=2.0)
    feats = ex.extract(ravdess_video)
    assert feats["x"].shape == (len(ex.feature_names()),)
    assert np.isfinite(feats["x"]).all()
    assert len(feats["points"]) > 0  # a speaking face moves
    # the speaker sits in the middle of the letterboxed frame
    assert 0.3 < float(np.median(feats["points"][:, 0])) < 0.7
