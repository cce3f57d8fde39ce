"""Encoders (one modality each); importing this package registers them.

Audio: ``mfcc_cnn1d`` (MSAF/CFN-SR), ``sultana_audio_cnn1d`` (paper 001), ``gao_bilstm_attention``
(paper 002), ``cai_ser1``/``cai_ser2`` (paper 003), ``fercnn`` (paper 004); ``whisper_mlp`` / ``egemaps_mlp`` on per-clip embeddings and
``whisper_logreg``, a logistic regression fitted in closed form (the recommended recipe, no paper).
Visual: ``resnext3d_50`` (MSAF/CFN-SR), ``sultana_video_cnn3d`` (paper 001), ``cai_fer1``/``cai_fer2``
(paper 003) -- frame encoders -- and ``au_mlp``, a vector encoder for per-clip features.
"""

from avemo.models.encoders import (  # noqa: F401
    cai,
    embedding_mlp,
    fercnn,
    gao,
    logistic,
    mfcc_cnn,
    resnext3d,
    sultana,
    vector_mlp,
)
