"""Text feature extractors; importing this package registers them.

=================  =====================================================  ==================
name               what                                                   ``"x"``
=================  =====================================================  ==================
``minilm``         all-MiniLM-L6-v2 sentence embedding (mean pooling)     (384,)
``minilm_tokens``  all-MiniLM-L6-v2 token states, with ``"mask"`` (T,)    (T, 384)
=================  =====================================================  ==================

They read a string (``from_texts``), a clip's :attr:`~avemo.datasets.Clip.text`; see
:mod:`avemo.features.text.minilm`.
"""

from avemo.features.text import minilm  # noqa: F401  (registers)
from avemo.features.text.minilm import MiniLM, MiniLMTokens

__all__ = ["MiniLM", "MiniLMTokens"]
