"""How a long signal is cut into Whisper encoder passes: the one plan of the extractor and the predictor.

A signal of at most :data:`PASS_SECONDS` is encoded in one pass over all of it. A longer one is
encoded in passes of :data:`PASS_SECONDS` that overlap by twice :data:`CONTEXT_SECONDS`, each giving
its middle frames (the first from its start, the last to its end), so that no frame lies more than
5 s into a pass (6 s in the last), where the encoder's position table reads a voice as it reads a
short clip: in 30 s passes (the whole table) a voice more than about 8 s into a pass was read as
another emotion (measured in :mod:`avemo.inference.audio`). The ``whisper_base`` extractor
(:meth:`WhisperEncoder.iter_hidden_states <avemo.features.audio.whisper_encoder.WhisperEncoder.iter_hidden_states>`)
and the predictor (:meth:`WhisperAudioExpert.embed <avemo.inference.audio.WhisperAudioExpert.embed>`)
both pool the frames of :func:`encoder_passes`, so that a model is trained on the embedding the
predictor gives it. Numpy only: the plan loads without torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from avemo.features.audio.whisper_weights import HOP, SAMPLE_RATE

#: the most audio one encoder pass reads (a clip up to this long is one pass)
PASS_SECONDS = 6.0
#: the context a pass keeps on each side of the frames it gives
CONTEXT_SECONDS = 1.0
#: passes of one length encoded in one call, as many frames as one 30 s pass: one call on them allocates the
#: temporaries one 30 s pass did; one call each, their smaller temporaries fell under glibc's mmap threshold
#: and fragmented the heap (an hour of audio in 10 s passes: 1.98 GB peak instead of 0.85; :mod:`avemo.memory`)
PASSES_PER_CALL = 5
#: samples per encoder frame (20 ms: the second convolution's stride of 2 hops)
FRAME_SAMPLES = 2 * HOP

Pass = tuple[np.ndarray, int, "int | None"]


def encoder_passes(blocks: Iterable[np.ndarray]) -> Iterator[Pass]:
    """The encoder passes over a 16 kHz signal decoded in ``blocks``: ``(segment, skip, keep)``, where the
    encoder states of ``segment`` from frame ``skip`` on, ``keep`` of them (None: to its end), are the
    signal's next frames. A signal of at most :data:`PASS_SECONDS` is one pass over the whole of it; a
    longer one gives passes of at most that length, overlapping by twice :data:`CONTEXT_SECONDS`, each
    kept between its contexts (the first from its start, the last to its end): a frame lies at most
    ``PASS_SECONDS - CONTEXT_SECONDS`` into its pass (of the last pass: ``PASS_SECONDS``). The passes do
    not depend on how the signal is cut into ``blocks``. Holds about one pass of samples."""
    size, context = int(PASS_SECONDS * SAMPLE_RATE), int(CONTEXT_SECONDS * SAMPLE_RATE)
    stride = size - 2 * context
    buffer = np.zeros(0, dtype=np.float32)  # the signal from sample ``origin`` on
    origin = done = 0  # ``done``: the first sample of the next frame to give
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        while origin + len(buffer) > size and origin + len(buffer) >= done + stride + context:
            lo = max(0, done - context)
            yield buffer[lo - origin : done + stride + context - origin], (done - lo) // FRAME_SAMPLES, stride // FRAME_SAMPLES
            done += stride
            buffer, origin = buffer[done - context - origin :], done - context
    if origin + len(buffer) > done:
        lo = max(0, done - context)
        yield buffer[lo - origin :], (done - lo) // FRAME_SAMPLES, None


def signal_passes(y: np.ndarray) -> Iterator[Pass]:
    """:func:`encoder_passes` of a signal held whole, fed in blocks of one stride (no copy of all of it)."""
    step = int((PASS_SECONDS - 2 * CONTEXT_SECONDS) * SAMPLE_RATE)
    return encoder_passes(y[i : i + step] for i in range(0, len(y), step))


def batched_passes(passes: Iterable[Pass], per_call: int = PASSES_PER_CALL) -> Iterator[list[Pass]]:
    """``passes`` in groups of consecutive passes of one length, at most ``per_call`` each: the passes
    one encoder call takes (streamed: a group is given as soon as it is complete)."""
    batch: list[Pass] = []
    for item in passes:
        if batch and (len(batch) == per_call or len(item[0]) != len(batch[0][0])):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def frames_of(n_samples: int, available: int) -> int:
    """How many of the ``available`` encoder frames of a segment of ``n_samples`` hold it: ceil(n / 320)
    (the encoder pads its input by half a window), at least 1."""
    return max(1, min(available, -(-n_samples // FRAME_SAMPLES)))


def kept(states, segment: np.ndarray, skip: int, keep: int | None):
    """The frames a pass gives (``states``: the pass's frames on the first axis, padding included)."""
    states = states[: frames_of(len(segment), len(states))]
    return states[skip : None if keep is None else skip + keep]
