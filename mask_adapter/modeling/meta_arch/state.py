"""The records every meta-architecture hands between its hooks: ``ForwardState`` and ``Proposals``.

Shapes as in ``base.py``: B images, Q proposals, C classes (+1 void), T text rows, D CLIP width, C_raw trunk width,
H×W padded image, h×w CLIP grid, h'×w' any mask resolution (post-processing upsamples to H×W).
"""

from dataclasses import dataclass, replace
from typing import TypedDict

from detectron2.structures import ImageList
from torch import Tensor

from .vocabulary import Vocabulary

__all__ = ["ForwardState", "Proposals"]


@dataclass
class ForwardState:
    """Everything computed once per batch and read by the hooks."""

    images: ImageList
    features: dict[str, Tensor]
    clip_dense: Tensor  # (B, C_raw, h, w) unprojected trunk feature
    dense: Tensor  # (B, D, h, w) adapter input
    text: Tensor  # (T + 1, D) text rows, void last
    synonyms_per_class: list[int]
    vocabulary: Vocabulary
    adapter_text: Tensor | None = None  # (T + 1, D) or (B, T + 1, D)

    def image(self, index: int) -> "ForwardState":
        """The state of image ``index`` alone (batch of one; shared text rows kept, features not sliced)."""
        adapter_text = self.adapter_text
        if adapter_text is not None and adapter_text.dim() == 3:
            adapter_text = adapter_text[index : index + 1]
        return replace(
            self,
            images=ImageList(self.images.tensor[index : index + 1], [self.images.image_sizes[index]]),
            clip_dense=self.clip_dense[index : index + 1],
            dense=self.dense[index : index + 1],
            adapter_text=adapter_text,
        )


class Proposals(TypedDict, total=False):
    """What ``propose_masks`` returns, for every meta-architecture.

    pred_masks: (B, Q, h', w') mask logits (always present; Q may be 0 while training stage 1).
    pred_logits: (B, Q, C + 1) in-vocabulary class logits of a generator (models with one).
    num_masks: per image, how many leading slots of Q are real masks (absent: all Q); the rest is padding.
    sam_masks: (B, Q, H, W) bool full-resolution masks of the SAM path.
    """

    pred_masks: Tensor
    pred_logits: Tensor
    num_masks: list[int]
    sam_masks: Tensor
