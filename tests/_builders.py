"""Builders shared by the test files: the tiny models (one config path, ``engine.build_config``), a numerically
varied adapter head, box-shaped GT instances."""

from collections.abc import Sequence
from typing import Any

import torch
from detectron2.config import CfgNode
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Instances

from mask_adapter.config import build_config
from mask_adapter.modeling.adapter.head import MaskAdapterHead
from mask_adapter.modeling.meta_arch.vocabulary import Vocabulary
from tests import REPO

TINY_CONFIGS = REPO / "configs" / "tiny"  # fcclip_tiny, maftp_tiny, mask2former_clip_tiny, warmup_tiny (+ Base-tiny)
CLASSES = ["square,box", "circle", "triangle", "sky", "grass"]  # the tiny models' test vocabulary (synonyms: ",")
THING_IDS = (0, 1, 2)


def tiny_config(stem: str = "fcclip_tiny", *opts: Any) -> CfgNode:
    """The validated config of ``configs/tiny/<stem>.yaml`` with ``opts`` ("KEY", value, ...) merged on top."""
    return build_config(str(TINY_CONFIGS / f"{stem}.yaml"), [str(o) for o in opts])


def tiny_model(
    stem: str = "fcclip_tiny",
    *opts: Any,
    seed: int = 0,
    classes: Sequence[str] | None = CLASSES,
    thing_ids: Sequence[int] = THING_IDS,
    cfg: CfgNode | None = None,
) -> torch.nn.Module:
    """A tiny random model (weights drawn after ``torch.manual_seed(seed)``) in eval mode; with ``classes`` it has
    that test vocabulary and the same training vocabulary. ``cfg`` replaces ``tiny_config(stem, *opts)``."""
    cfg = tiny_config(stem, *opts) if cfg is None else cfg
    torch.manual_seed(seed)
    model = build_model(cfg)
    if classes is not None:
        model.set_vocabulary(list(classes), thing_ids=list(thing_ids))
        model.train_vocabulary = Vocabulary.from_names(list(classes), frozenset(thing_ids))
    return model.eval()


def varied_head(dtype: torch.dtype = torch.float32, **kwargs) -> MaskAdapterHead:
    """A ``MaskAdapterHead(**kwargs)`` in ``dtype``, eval mode, with layer scale and the patchifier norms drawn around 1
    (instead of 1e-6 / identity) so every ConvNeXt block and norm changes the output numerically."""
    head = MaskAdapterHead(**kwargs).to(dtype)
    with torch.no_grad():
        for block in (head.cnext1, head.cnext2, head.cnext3):
            block.gamma.uniform_(0.5, 1.5)
        for i in (1, 4):
            head.mask_downscaling[i].weight.uniform_(0.5, 1.5)
            head.mask_downscaling[i].bias.normal_()
    return head.eval()


def box_instances(h: int, w: int, boxes: list[tuple[int, int, int, int, int]]) -> Instances:
    """GT ``Instances`` of an h×w image: one rectangular mask per (y0, x0, y1, x1, class) box."""
    masks = torch.zeros(len(boxes), h, w, dtype=torch.bool)
    for i, (y0, x0, y1, x1, _) in enumerate(boxes):
        masks[i, y0:y1, x0:x1] = True
    inst = Instances((h, w))
    inst.gt_masks = BitMasks(masks)
    inst.gt_classes = torch.tensor([b[-1] for b in boxes], dtype=torch.long)
    return inst
