"""``avemo demo``: an example that works offline on a fresh machine.

With no file of the user's, a short clip is generated with :func:`avemo.media.synth.write_clip`
from material that ships in the dependencies (the portrait in matplotlib's sample data, drifting
slowly, and a formant-synthesised "speech" utterance that the voice-activity detector accepts), so
nothing third-party is committed or downloaded.
Its predicted emotion means nothing (neither the face nor the voice acts an emotion); it shows
that the whole pipeline (decoding, face tracking, both experts, fusion, timeline) runs.
"""

from __future__ import annotations

from pathlib import Path

DEMO_NAME = "avemo_demo.mp4"


def make_demo_clip(folder: str | Path, duration: float = 4.0, size: tuple[int, int] = (640, 480)) -> Path:
    """Write the demo clip (H.264 + AAC, 25 fps, a face and a voice) into ``folder``; return its path."""
    from avemo.media.synth import write_clip

    return write_clip(Path(folder) / DEMO_NAME, duration=duration, size=size, fps=25, face=True, audio="speech")
