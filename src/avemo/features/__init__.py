"""Feature extractors: one registry (see :mod:`avemo.features.base`).

Importing this package registers the built-in extractors:

* audio (:mod:`avemo.features.audio`): ``mfcc``, ``logmel``, ``egemaps``, ``egemaps_lld``,
  ``pyaa34``, ``pitch_energy``;
* video (:mod:`avemo.features.face`, :mod:`avemo.features.stip`): ``face_crops``,
  ``face_landmarks``, ``stip``;
* text (:mod:`avemo.features.text`): ``minilm``, ``minilm_tokens``.
"""

from avemo.features import audio as _audio  # noqa: F401  (registers extractors)
from avemo.features import face as _face  # noqa: F401
from avemo.features import stip as _stip  # noqa: F401
from avemo.features import text as _text  # noqa: F401
from avemo.features.base import (
    AudioExtractor,
    Extractor,
    Features,
    TextExtractor,
    VideoExtractor,
    extractor_class,
    get_extractor,
    list_extractors,
    register_extractor,
)

__all__ = [
    "AudioExtractor",
    "Extractor",
    "Features",
    "TextExtractor",
    "VideoExtractor",
    "extractor_class",
    "get_extractor",
    "list_extractors",
    "register_extractor",
]
