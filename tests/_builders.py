"""Small test inputs shared by several test files: a numerically varied adapter head, box-shaped GT instances."""

import torch
from detectron2.structures import BitMasks, Instances

from mask_adapter.modeling.adapter.head import MaskAdapterHead


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
