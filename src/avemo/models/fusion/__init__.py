"""Audio-visual fusion models; importing this package registers them.

Paper 000's Table 1 set: ``late_average``, ``late_multiplicative``, ``late_product``, ``concat_fc``,
``mcbp``, ``mmtm``, ``msaf``, ``cfn_sr``, ``cfnsr_lstm``. The other papers' models:
``sultana_concat_dense`` (001), ``gao_mha_residual`` and ``gao_dialogue`` (002), ``cai_mer1``/``cai_mer2`` (003),
``mfa_fercnn`` (004). ``late_calibrated``: the recommended recipe (a calibrated, weighted product
of experts; registry alias ``default``).
"""

from avemo.models.fusion import (  # noqa: F401
    cai_mer,
    cfn_sr,
    cfnsr_lstm,
    concat,
    gao_dialogue,
    gao_mha,
    late,
    late_calibrated,
    mcbp,
    mfa_fercnn,
    mmtm,
    msaf,
    sultana_concat,
)
