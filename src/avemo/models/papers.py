"""The five papers avemo's models follow, cited by reference.

Every model names the paper it follows and the section or table (``Model.paper``, shown by
``avemo models`` and in ``docs/models.md``) through :meth:`Paper.cite`. The project numbers the
papers 000-004 (the order of its paper list); prose says "paper 000" for short. Authors and titles
are as printed on the papers' first pages; the papers' texts do not state where they were published,
so no venue is given.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    """A paper: its number in the project's list, authors and title as printed, and a short name."""

    number: str
    authors: str
    title: str
    short: str  # the authors as cited in running text

    def cite(self, where: str = "") -> str:
        """``Zhang & Zheng, "Enhancing ... CFRSN-LSTM", §6, Table 1`` (``where``: the section followed)."""
        return f'{self.short}, "{self.title}"' + (f", {where}" if where else "")


ZHANG_ZHENG = Paper("000", "Yidan Zhang, Yangyue Zheng", "Enhancing Emotion Recognition Accuracy with CFRSN-LSTM",
                    "Zhang & Zheng")
SULTANA = Paper("001", "Tamanna Sultana, Meskat Jahan, Md. Kamal Uddin, Yoshinori Kobayashi, Mahmudul Hasan",
                "Multimodal Emotion Recognition through Deep Fusion of Audio-Visual Data", "Sultana et al.")
GAO_GUO = Paper("002", "Ziheng Gao, Haoxia Guo", "Multimodal emotion recognition based on fusion with residual connection",
                "Gao & Guo")
CAI = Paper("003", "Linqin Cai, Jiangong Dong, Min Wei",
            "Multi-Modal Emotion Recognition From Speech and Facial Expression Based on Deep Learning", "Cai et al.")
SRINIVAS_MISHRA = Paper("004", "P V V S Srinivas, Pragnyaban Mishra",
                        "Human Emotion Recognition by Integrating Facial and Speech Features: An Implementation of "
                        "Multimodal Framework using CNN", "Srinivas & Mishra")

#: paper 000, Table 1: millions of parameters of the models on a 3D ResNeXt-50 video encoder and an
#: MFCC 1D CNN audio encoder, 8 classes (``cfnsr_lstm``: 26.40 in the abstract, 26.50 in the table)
ZHANG_ZHENG_TABLE_1 = {
    "resnext3d_50": 25.88,
    "mfcc_cnn1d": 0.03,
    "late_average": 25.92,
    "late_multiplicative": 25.92,
    "late_product": 25.92,
    "concat_fc": 26.87,
    "mcbp": 51.03,
    "mmtm": 31.97,
    "msaf": 25.94,
    "cfn_sr": 26.30,
    "cfnsr_lstm": 26.50,
}

#: by number
PAPERS = {p.number: p for p in (ZHANG_ZHENG, SULTANA, GAO_GUO, CAI, SRINIVAS_MISHRA)}
