"""One hook contract for every meta-architecture (tiny CPU models from configs/tiny).

``propose_masks`` returns ``Proposals`` with 4-D ``pred_masks`` logits, ``classify_masks`` a (B, Q, C + 1) tensor,
and ``postprocess`` reads only those; padding slots named by ``num_masks`` are left out. The training helpers get
everything explicitly: they run on a ``ForwardState`` with a plain embedding function, without a model.
"""

import numpy as np
import pytest
import torch
from detectron2.structures import BitMasks, Instances

from mask_adapter.modeling.meta_arch.inference import mask2former_postprocess
from mask_adapter.modeling.meta_arch.options import InferenceOptions, MaskTrainingOptions
from mask_adapter.modeling.meta_arch.sam import SAMMaskAdapter, to_sam_config
from mask_adapter.modeling.meta_arch.state import ForwardState
from mask_adapter.modeling.meta_arch.training import gt_mask_losses, padded_gt
from tests._builders import CLASSES, THING_IDS, tiny_config, tiny_model

STEMS = ["fcclip_tiny", "maftp_tiny", "mask2former_clip_tiny", "warmup_tiny", "sam"]


class _HalfMask:
    """SAM-like generator: one mask, the left half of the image."""

    def generate(self, image: np.ndarray) -> list:
        m = np.zeros(image.shape[:2], bool)
        m[:, : image.shape[1] // 2] = True
        return [{"segmentation": m}]


def _build(stem: str):
    if stem != "sam":
        return tiny_model(stem, seed=0)
    torch.manual_seed(0)
    model = SAMMaskAdapter(to_sam_config(tiny_config("fcclip_tiny")), mask_generator=_HalfMask())
    model.set_vocabulary(CLASSES, thing_ids=THING_IDS)
    return model.eval()


def _sem_seg(h: int, w: int, labels: int) -> torch.Tensor:
    sem = torch.zeros(h, w, dtype=torch.long)
    for k in range(labels):
        sem[:, k * w // labels :] = k
    return sem


def _inputs():
    g = torch.Generator().manual_seed(0)
    return [
        {"image": torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=g), "sem_seg": _sem_seg(64, 64, 3)},
        {"image": torch.randint(0, 256, (3, 48, 40), dtype=torch.uint8, generator=g), "sem_seg": _sem_seg(48, 40, 1)},
    ]


@pytest.mark.parametrize("stem", STEMS)
def test_every_model_returns_the_same_types(stem):
    model = _build(stem)
    inputs = _inputs()
    with torch.no_grad():
        state = model.encode(inputs)
        proposals = model.propose_masks(state, inputs)
        masks = proposals["pred_masks"]
        assert isinstance(masks, torch.Tensor) and masks.dim() == 4 and masks.shape[0] == 2
        logits = model.classify_masks(state, proposals)
        assert isinstance(logits, torch.Tensor)
        assert logits.shape == (2, masks.shape[1], len(CLASSES) + 1)
        num = proposals.get("num_masks", [masks.shape[1]] * 2)
        for i, n in enumerate(num):
            assert torch.isfinite(logits[i, :n, :-1]).all()
        results = model.postprocess(state, proposals, logits, inputs)
    assert [r["sem_seg"].shape for r in results] == [(5, 64, 64), (5, 48, 40)]
    if stem == "warmup_tiny":  # ground-truth masks: one per label, the second image padded to Q = 3
        assert num == [3, 1] and masks.shape[1] == 3
        assert torch.equal(logits[1, 1:], torch.zeros_like(logits[1, 1:]))


def test_postprocess_leaves_out_padding_slots():
    """With num_masks, a padding slot cannot win a pixel even if its logits are the largest."""
    model = _build("fcclip_tiny")
    inputs = _inputs()[:1]
    with torch.no_grad():
        state = model.encode(inputs)
    masks = torch.full((1, 2, 16, 16), -20.0)
    masks[0, 0, :, :8] = 20.0  # real slot: the left half
    masks[0, 1] = 20.0  # padding slot covering everything
    logits = torch.full((1, 2, len(CLASSES) + 1), -10.0)
    logits[0, 0, 1] = 10.0  # real slot: "circle"
    logits[0, 1, 4] = 30.0  # padding slot: "grass"
    options = InferenceOptions(semantic_on=True)
    with_padding = mask2former_postprocess(state, masks, logits, inputs, options)[0]["sem_seg"]
    without = mask2former_postprocess(state, masks, logits, inputs, options, num_masks=[1])[0]["sem_seg"]
    assert torch.all(with_padding[:, :, 40:].argmax(0) == 4)
    assert torch.all(without[:, :, :24].argmax(0) == 1)
    assert float(without[4].max()) < 1e-6


def test_training_helpers_need_no_model():
    """gt_mask_losses runs on a hand-made ForwardState and an embedding function; the gradient reaches it."""
    from detectron2.structures import ImageList

    torch.manual_seed(0)
    d, classes = 8, 3
    state = ForwardState(
        images=ImageList(torch.zeros(1, 3, 32, 32), [(32, 32)]),
        features={},
        clip_dense=torch.zeros(1, 4, 1, 1),
        dense=torch.zeros(1, d, 1, 1),
        text=torch.nn.functional.normalize(torch.randn(classes + 1, d), dim=-1),
        synonyms_per_class=[1] * classes,
        vocabulary=None,
    )
    state.adapter_text = state.text
    inst = Instances((32, 32))
    gt = torch.zeros(2, 32, 32, dtype=torch.bool)
    gt[0, :16], gt[1, 16:] = True, True
    inst.gt_masks, inst.gt_classes = BitMasks(gt), torch.tensor([0, 2])
    inputs = [{"image": torch.zeros(3, 32, 32, dtype=torch.uint8), "image_id": 1, "instances": inst}]
    weight = torch.randn(d, requires_grad=True)
    calls = []

    def embed(s: ForwardState, masks: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(masks.shape))
        return masks.flatten(2).mean(-1, keepdim=True) * weight

    options = MaskTrainingOptions(warmup_num_masks=4, seed=3)
    losses = gt_mask_losses(state, inputs, embed=embed, logit_scale=torch.tensor(2.0), options=options)
    assert set(losses) == {"loss_ce"} and calls == [(1, 4, 32, 32)]
    losses["loss_ce"].backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    again = gt_mask_losses(state, inputs, embed=embed, logit_scale=torch.tensor(2.0), options=options)
    assert torch.equal(again["loss_ce"].detach(), losses["loss_ce"].detach())  # seeded slot sampling
    (padded, labels) = padded_gt(state, inputs)[0]
    assert padded.shape == (2, 32, 32) and labels.tolist() == [0, 2]
