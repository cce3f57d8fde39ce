"""``stip``: spatio-temporal interest points (Harris3D) reduced to a fixed-length clip descriptor.

Follows paper 004 (Srinivas & Mishra, "Human Emotion Recognition by Integrating Facial and Speech Features: An Implementation of Multimodal Framework using CNN", section III.B "Image Feature
Extraction", eqs. 1-8), which is Laptev's space-time extension of the Harris detector
(I. Laptev, "On Space-Time Interest Points", IJCV 64(2/3):107-123, 2005):

1. gray frames ``f`` at reduced resolution (``height`` pixels, intensities in [0, 1]);
2. linear scale space ``L = g(.; sigma^2, tau^2) * f`` with a separable 3-D Gaussian, spatial
   variance ``sigma^2`` (pixels^2) and temporal variance ``tau^2`` (frames^2) (eqs. 1-2);
3. first derivatives ``Lx, Ly, Lt`` (eqs. 5-7, central differences of ``L``) and the second-moment
   matrix ``mu = g(.; s*sigma^2, s*tau^2) * [[Lx^2, LxLy, LxLt], [., Ly^2, LyLt], [., ., Lt^2]]``
   with the integration scale factor ``s`` (eqs. 3-4, ``sigma_i^2 = s * sigma^2``);
4. the response ``H = det(mu) - k * trace(mu)^3`` (eq. 8; ``k = 0.005`` as in Laptev 2005);
5. interest points: local maxima of ``H`` in a 3x3x3 space-time neighbourhood with ``H >
   threshold``, at every (sigma^2, tau^2) of the configured scales.

Departures, and why:

* Derivatives are scale-normalised (``sigma * Lx``, ``sigma * Ly``, ``tau * Lt``), so one
  absolute ``threshold`` serves all scales; the paper only says that ``H`` "is normalized"
  against illumination. We do not normalise brightness per frame (it would turn global
  brightness changes into temporal derivatives); the threshold is on [0, 1] intensities.
* Points are detected at each scale of a fixed set (as Laptev & Wang's multi-scale Harris3D,
  "Learning realistic human actions from movies", CVPR 2008) without scale selection.
* The paper does not say how the points become a fixed-length vector for its classifier
  (FERCNN), so we define the clip descriptor below. It has the same length for any clip.
* Frames are processed in temporal chunks with enough overlap (``pad`` frames) that the
  result equals whole-clip processing: memory is bounded by ``chunk_frames``, whatever the
  video's length. At the clip's ends the frames are extended by repetition (no motion).

Descriptor ``"x"`` (D,) float32, names from :func:`feature_names` (in this order):

* ``density_c{i}_r{j}_t{k}``: points per frame in each cell of a ``grid`` = (columns, rows,
  temporal bins) partition of the frame and of the clip's duration;
* ``rate``: points per frame; ``scale_s{sigma2}_t{tau2}``: the fraction of points at each scale;
* ``log_response_mean``, ``log_response_std``: log10 of H at the points;
* ``jet_mean_*``, ``jet_std_*``: statistics over points of the normalised second-order
  space-time jet ``(Lx, Ly, Lt, Lxx, Lxy, Lyy, Lxt, Lyt, Ltt)`` (each derivative times
  ``sigma^a tau^b`` for its orders a, b; the jet of each point is L2-normalised, so contrast does
  not count), after Laptev & Lindeberg, "Local descriptors for spatio-temporal recognition" (2004);
* ``hog_{b}``: mean over points of the L1-normalised histogram of spatial gradient orientations
  (weighted by magnitude) in a ``(2*ceil(2 tau)+1) x (2*ceil(2 sigma)+1)^2`` patch;
* ``hof_{b}``: the same for the direction of the normal flow ``-Lt * grad(L) / |grad(L)|^2``
  (a histogram-of-flow proxy without an optical-flow solver), weighted by ``|Lt|``.

All of them are 0 for a clip without interest points (a static video). Extra outputs:
``"points"`` (P, 6) float32 ``[x, y, t, sigma2, tau2, H]`` with x, y in [0, 1] of the frame's
width/height and t in seconds; ``"n_frames"`` () int64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy  # scipy.ndimage loads on first use (SciPy's lazy submodules): a faster import

from avemo.errors import ConfigError, FeatureError, MissingStreamError
from avemo.features.base import Features, VideoExtractor, register_extractor

JET_NAMES = ("Lx", "Ly", "Lt", "Lxx", "Lxy", "Lyy", "Lxt", "Lyt", "Ltt")
_TRUNCATE = 3.0  # Gaussian kernels are cut at 3 standard deviations


@dataclass(frozen=True)
class StipConfig:
    """Options of ``stip`` (see the module docstring).

    ``height``: frames are resized to this height, the width keeps the aspect ratio;
    ``fps``: resample to this rate (None: the source's frames; ``tau2`` is in frames of that rate);
    ``start`` / ``duration``: the window in seconds; ``sigma2`` / ``tau2``: the spatial and temporal
    variances, every combination is a scale; ``s``: integration scale factor; ``k``: Harris
    constant; ``threshold``: minimum H of a point; ``grid``: (columns, rows, temporal bins) of
    the density histogram; ``orientation_bins``: HOG/HOF bins; ``max_points``: per chunk and
    scale, the strongest points kept for the local descriptors (all points are counted);
    ``chunk_frames``: frames processed at once (memory bound).
    """

    height: int = 120
    fps: float | None = None
    start: float = 0.0
    duration: float | None = None
    sigma2: tuple[float, ...] = (4.0, 8.0)
    tau2: tuple[float, ...] = (2.0, 4.0)
    s: float = 2.0
    k: float = 0.005
    threshold: float = 1e-12
    grid: tuple[int, int, int] = (4, 4, 3)
    orientation_bins: int = 8
    max_points: int = 400
    chunk_frames: int = 64


def scales(config: StipConfig) -> list[tuple[float, float]]:
    """The (sigma^2, tau^2) combinations, in descriptor order."""
    return [(s2, t2) for s2 in config.sigma2 for t2 in config.tau2]


def feature_names(config: StipConfig | None = None) -> list[str]:
    """Names of the descriptor ``"x"`` for ``config`` (its length is the descriptor's length)."""
    c = config or StipConfig()
    gx, gy, gt = c.grid
    names = [f"density_c{i}_r{j}_t{k}" for k in range(gt) for j in range(gy) for i in range(gx)]
    names.append("rate")
    names += [f"scale_s{s2:g}_t{t2:g}" for s2, t2 in scales(c)]
    names += ["log_response_mean", "log_response_std"]
    names += [f"jet_mean_{n}" for n in JET_NAMES] + [f"jet_std_{n}" for n in JET_NAMES]
    names += [f"hog_{b}" for b in range(c.orientation_bins)]
    names += [f"hof_{b}" for b in range(c.orientation_bins)]
    return names


def _radius(sd: float) -> int:
    return int(_TRUNCATE * sd + 0.5)


def pad_frames(config: StipConfig) -> int:
    """Temporal overlap that makes chunked processing equal whole-clip processing."""
    tau = math.sqrt(max(config.tau2))
    return _radius(tau) + _radius(math.sqrt(config.s) * tau) + 2


def _gaussian(volume: np.ndarray, sigma: float, tau: float) -> np.ndarray:
    """Separable Gaussian smoothing of an (H, W, T) float32 volume, edges extended ("nearest").

    Spatial passes use OpenCV (the T frames as channels; it is about twice as fast as
    scipy here), the temporal pass scipy; both cut the kernel at ``_TRUNCATE`` deviations.
    """
    if volume.shape[2] <= 512:  # OpenCV filters at most 512 channels
        r = _radius(sigma)
        kernel = cv2.getGaussianKernel(2 * r + 1, sigma).astype(np.float32)
        out = cv2.sepFilter2D(volume, -1, kernel, kernel, borderType=cv2.BORDER_REPLICATE)
        out = out.reshape(volume.shape)  # OpenCV drops a channel axis of length 1
    else:
        out = scipy.ndimage.gaussian_filter(volume, sigma=(sigma, sigma, 0), mode="nearest", truncate=_TRUNCATE)
    if tau > 0 and volume.shape[2] > 1:
        out = scipy.ndimage.gaussian_filter1d(out, tau, axis=2, mode="nearest", truncate=_TRUNCATE)
    return out


def harris3d(volume: np.ndarray, sigma2: float, tau2: float, s: float = 2.0, k: float = 0.005):
    """Harris3D response of a (T, H, W) float volume at one scale.

    Returns ``(H, L, (Lx, Ly, Lt))``, each (T, H, W): the response, the scale-space volume
    and its scale-normalised first derivatives (``sigma * dL/dx``, ``sigma * dL/dy``,
    ``tau * dL/dt``, central differences).
    """
    sigma, tau = math.sqrt(sigma2), math.sqrt(tau2)
    v = np.ascontiguousarray(np.asarray(volume, dtype=np.float32).transpose(1, 2, 0))  # (H, W, T)
    L = _gaussian(v, sigma, tau)
    Ly, Lx = np.gradient(L, axis=(0, 1))
    Lt = np.gradient(L, axis=2) if L.shape[2] > 1 else np.zeros_like(L)
    Lx *= sigma
    Ly *= sigma
    Lt *= tau
    si, ti = math.sqrt(s) * sigma, math.sqrt(s) * tau
    xx, yy, tt = _gaussian(Lx * Lx, si, ti), _gaussian(Ly * Ly, si, ti), _gaussian(Lt * Lt, si, ti)
    xy, xt, yt = _gaussian(Lx * Ly, si, ti), _gaussian(Lx * Lt, si, ti), _gaussian(Ly * Lt, si, ti)
    det = xx * (yy * tt - yt * yt) - xy * (xy * tt - yt * xt) + xt * (xy * yt - yy * xt)
    trace = xx + yy + tt
    H = det - k * trace**3

    def back(a: np.ndarray) -> np.ndarray:
        return a.transpose(2, 0, 1)

    return back(H), back(L), (back(Lx), back(Ly), back(Lt))


def local_maxima(H: np.ndarray, threshold: float, t_range: tuple[int, int] | None = None) -> np.ndarray:
    """(P, 3) int indices (t, y, x) of 3x3x3 local maxima of ``H`` above ``threshold``.

    ``t_range``: keep only maxima with ``t_range[0] <= t < t_range[1]``.
    """
    peaks = (H > threshold) & (H == scipy.ndimage.maximum_filter(H, size=3, mode="nearest"))
    if t_range is not None:
        peaks[: t_range[0]] = False
        peaks[t_range[1] :] = False
    return np.argwhere(peaks)


def _jets(L: np.ndarray, idx: np.ndarray, sigma: float, tau: float) -> np.ndarray:
    """Scale-normalised, L2-normalised second-order jets (P, 9) of L at points ``idx`` (t, y, x)."""
    T, Hh, W = L.shape
    t, y, x = idx[:, 0], idx[:, 1], idx[:, 2]

    def at(dt: int, dy: int, dx: int) -> np.ndarray:
        return L[np.clip(t + dt, 0, T - 1), np.clip(y + dy, 0, Hh - 1), np.clip(x + dx, 0, W - 1)]

    c = at(0, 0, 0)
    lx = (at(0, 0, 1) - at(0, 0, -1)) / 2
    ly = (at(0, 1, 0) - at(0, -1, 0)) / 2
    lt = (at(1, 0, 0) - at(-1, 0, 0)) / 2
    lxx = at(0, 0, 1) - 2 * c + at(0, 0, -1)
    lyy = at(0, 1, 0) - 2 * c + at(0, -1, 0)
    ltt = at(1, 0, 0) - 2 * c + at(-1, 0, 0)
    lxy = (at(0, 1, 1) - at(0, 1, -1) - at(0, -1, 1) + at(0, -1, -1)) / 4
    lxt = (at(1, 0, 1) - at(1, 0, -1) - at(-1, 0, 1) + at(-1, 0, -1)) / 4
    lyt = (at(1, 1, 0) - at(1, -1, 0) - at(-1, 1, 0) + at(-1, -1, 0)) / 4
    s, u = sigma, tau
    jet = np.stack(
        [
            s * lx,
            s * ly,
            u * lt,
            s * s * lxx,
            s * s * lxy,
            s * s * lyy,
            s * u * lxt,
            s * u * lyt,
            u * u * ltt,
        ],
        axis=1,
    )
    norm = np.linalg.norm(jet, axis=1, keepdims=True)
    return jet / np.maximum(norm, 1e-12)


def _histograms(
    grads: tuple[np.ndarray, np.ndarray, np.ndarray], idx: np.ndarray, sigma: float, tau: float, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-point L1-normalised HOG and normal-flow histograms (P, bins) over a local patch."""
    Lx, Ly, Lt = grads
    T, Hh, W = Lx.shape
    rt, rs = math.ceil(2 * tau), math.ceil(2 * sigma)
    ot, os_ = np.arange(-rt, rt + 1), np.arange(-rs, rs + 1)
    tt = np.clip(idx[:, 0, None, None, None] + ot[None, :, None, None], 0, T - 1)
    yy = np.clip(idx[:, 1, None, None, None] + os_[None, None, :, None], 0, Hh - 1)
    xx = np.clip(idx[:, 2, None, None, None] + os_[None, None, None, :], 0, W - 1)
    gx, gy, gt = Lx[tt, yy, xx], Ly[tt, yy, xx], Lt[tt, yy, xx]
    p = len(idx)
    mag2 = gx * gx + gy * gy
    angle = np.arctan2(gy, gx)
    # normal flow -Lt * grad / |grad|^2 points along the gradient when -Lt > 0, against it otherwise
    flow_angle = np.where(gt < 0, angle, angle + np.pi)
    flat = np.arange(p)[:, None] * bins

    def hist(theta: np.ndarray, weight: np.ndarray) -> np.ndarray:
        b = (np.floor((theta % (2 * np.pi)) / (2 * np.pi) * bins).astype(np.int64) % bins).reshape(p, -1)
        h = np.bincount((b + flat).ravel(), weights=weight.reshape(p, -1).ravel(), minlength=p * bins)
        h = h.reshape(p, bins)
        return h / np.maximum(h.sum(axis=1, keepdims=True), 1e-12)

    moving = np.where(mag2 > 1e-12, np.abs(gt), 0.0)
    return hist(angle, np.sqrt(mag2)), hist(flow_angle, moving)


@dataclass
class _Points:
    """Interest points accumulated over chunks."""

    t_index: list[np.ndarray]
    xy: list[np.ndarray]
    scale: list[np.ndarray]
    response: list[np.ndarray]
    jets: list[np.ndarray]
    hog: list[np.ndarray]
    hof: list[np.ndarray]


def _detect_chunk(
    chunk: np.ndarray, first: int, core: tuple[int, int], config: StipConfig, points: _Points
) -> None:
    """Detect points whose frame lies in ``core`` (chunk-relative) and add them to ``points``."""
    _, h, w = chunk.shape
    for si, (s2, t2) in enumerate(scales(config)):
        H, L, grads = harris3d(chunk, s2, t2, config.s, config.k)
        idx = local_maxima(H, config.threshold, core)
        if len(idx) == 0:
            continue
        response = H[idx[:, 0], idx[:, 1], idx[:, 2]]
        points.t_index.append(idx[:, 0] + first)
        points.xy.append(np.stack([(idx[:, 2] + 0.5) / w, (idx[:, 1] + 0.5) / h], axis=1))
        points.scale.append(np.full(len(idx), si))
        points.response.append(response)
        strongest = idx[np.argsort(-response)[: config.max_points]]
        sigma, tau = math.sqrt(s2), math.sqrt(t2)
        points.jets.append(_jets(L, strongest, sigma, tau))
        hog, hof = _histograms(grads, strongest, sigma, tau, config.orientation_bins)
        points.hog.append(hog)
        points.hof.append(hof)


def describe(points: _Points, n_frames: int, times: np.ndarray, config: StipConfig) -> Features:
    """The clip descriptor (see the module docstring) from the accumulated points."""
    gx, gy, gt = config.grid
    n_scales = len(scales(config))
    bins = config.orientation_bins

    def cat(parts: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(shape)

    t_index = cat(points.t_index, (0,)).astype(np.int64)
    xy = cat(points.xy, (0, 2))
    scale = cat(points.scale, (0,)).astype(np.int64)
    response = cat(points.response, (0,))
    jets = cat(points.jets, (0, len(JET_NAMES)))
    hog = cat(points.hog, (0, bins))
    hof = cat(points.hof, (0, bins))
    p = len(t_index)

    ci = np.minimum((xy[:, 0] * gx).astype(np.int64), gx - 1)
    rj = np.minimum((xy[:, 1] * gy).astype(np.int64), gy - 1)
    tk = np.minimum(t_index * gt // max(n_frames, 1), gt - 1)
    cells = np.bincount((tk * gy + rj) * gx + ci, minlength=gx * gy * gt).astype(np.float64)
    frames_per_bin = np.bincount(
        np.minimum(np.arange(n_frames) * gt // max(n_frames, 1), gt - 1), minlength=gt
    )
    density = cells.reshape(gt, gy * gx) / np.maximum(frames_per_bin, 1)[:, None]
    parts = [density.ravel(), [p / max(n_frames, 1)]]
    parts.append(np.bincount(scale, minlength=n_scales) / p if p else np.zeros(n_scales))
    if p:
        logr = np.log10(np.maximum(response, 1e-30))
        parts.append([logr.mean(), logr.std()])
    else:
        parts.append([0.0, 0.0])
    if len(jets):
        parts += [jets.mean(0), jets.std(0), hog.mean(0), hof.mean(0)]
    else:
        parts += [np.zeros(len(JET_NAMES)), np.zeros(len(JET_NAMES)), np.zeros(bins), np.zeros(bins)]
    x = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in parts]).astype(np.float32)
    s2t2 = np.array(scales(config), dtype=np.float64).reshape(-1, 2)
    table = np.zeros((p, 6), dtype=np.float32)
    if p:
        table[:, 0:2] = xy
        table[:, 2] = times[t_index]
        table[:, 3:5] = s2t2[scale]
        table[:, 5] = response
    return {"x": x, "points": table, "n_frames": np.asarray(n_frames, dtype=np.int64)}


def stip_from_frames(frames, config: StipConfig | None = None) -> Features:
    """The ``stip`` features of an iterable of ``(time, gray image)`` (H, W) uint8 frames.

    Streams: at most ``chunk_frames + 2 * pad_frames(config)`` frames are held at once.
    Raises FeatureError if there are no frames.
    """
    c = config or StipConfig()
    pad = pad_frames(c)
    buffer: list[np.ndarray] = []
    first = 0  # global index of buffer[0]
    core_start = 0  # global index of the next frame to detect in
    times: list[float] = []
    points = _Points([], [], [], [], [], [], [])
    iterator = iter(frames)
    ended = False
    while True:
        while not ended and first + len(buffer) < core_start + c.chunk_frames + pad:
            item = next(iterator, None)
            if item is None:
                ended = True
                break
            t, image = item
            times.append(float(t))
            buffer.append(np.asarray(image, dtype=np.float32) / 255.0)
        total = first + len(buffer)
        if total == 0:
            raise FeatureError("holds no video frames in the requested window")
        core_end = min(core_start + c.chunk_frames, total)
        if core_start >= core_end:
            break
        chunk = np.stack(buffer)
        _detect_chunk(chunk, first, (core_start - first, core_end - first), c, points)
        core_start = core_end
        if ended and core_start >= total:
            break
        drop = max(0, core_start - pad - first)
        del buffer[:drop]
        first += drop
    n_frames = len(times)
    return describe(points, n_frames, np.asarray(times), c)


@register_extractor
class Stip(VideoExtractor):
    """Harris3D space-time interest points and their clip descriptor (see the module docstring)."""

    name = "stip"
    Config = StipConfig
    version = "1"
    summary = "Harris3D space-time interest points (Laptev 2005, paper 004) as a fixed-length clip descriptor"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        if c.height < 8:
            raise ConfigError(f"{self.name}: height must be >= 8, got {c.height}")
        if not c.sigma2 or not c.tau2 or min(c.sigma2) <= 0 or min(c.tau2) <= 0:
            raise ConfigError(f"{self.name}: sigma2 and tau2 need at least one positive value each")
        if len(c.grid) != 3 or min(c.grid) < 1:
            raise ConfigError(f"{self.name}: grid must be (columns, rows, temporal bins) >= 1, got {c.grid}")
        if c.chunk_frames < 1 or c.orientation_bins < 1 or c.max_points < 1 or c.s <= 0:
            raise ConfigError(
                f"{self.name}: chunk_frames, orientation_bins, max_points and s must be positive"
            )
        if c.fps is not None and c.fps <= 0:
            raise ConfigError(f"{self.name}: fps must be positive, got {c.fps}")

    @property
    def dim(self) -> int:
        return len(feature_names(self.config))

    def feature_names(self) -> list[str]:
        return feature_names(self.config)

    def extract(self, path: str | Path) -> Features:
        from avemo.media import iter_frames, probe

        c = self.config
        info = probe(path)
        if info.video is None:
            raise MissingStreamError("has no video stream (an audio-only file)", path, stream="video")
        width = max(2, 2 * round(info.video.width * c.height / max(info.video.height, 1) / 2))
        frames = iter_frames(
            path, fps=c.fps, start=c.start, duration=c.duration, size=(width, c.height), gray=True
        )
        try:
            return stip_from_frames(frames, c)
        except FeatureError as exc:
            if exc.path is None:
                exc.path = str(path)
            raise
