"""Data-parallel training on CPU: two gloo processes give the gradient of one process on both images.

Each of the two processes (torch.multiprocessing spawn, world size 2, file:// rendezvous in tmp_path) wraps the tiny
model with ``mask_adapter.engine.create_ddp_model`` (CPU DDP, no device_ids) and back-propagates the loss of one
image; DDP averages the gradients. The reference is one process back-propagating the loss of both images.

Why they can be equal: both losses are means. DDP's average of per-image means equals the mean over the batch only
when every image contributes the same number of terms. The cosine loss averages over the P pair slots of each image
(padding included), always equal. The cross-entropy averages over the *valid* slots (label >= 0), so both images
here have the same number of ground-truth masks (3 in stage 1, below its 8 slots; 5 in stage 2, above its 4 GT
slots), and IOU_THRESHOLD 1.01 rules out IoU matches (whose count would depend on the random generator), so every
image has the same valid count. With SEED set, the random slot subsets are drawn per image from (SEED, iteration,
image id), so one image gets the same slots whether it is alone in its process or in a batch of two.
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.structures import BitMasks, Instances
from detectron2.utils.events import EventStorage

from tests import REPO

CONFIGS = {"warmup": "configs/tiny/warmup_tiny.yaml", "fcclip": "configs/tiny/fcclip_tiny.yaml"}
NUM_MASKS = {"warmup": 3, "fcclip": 5}
SIZE = 64


def build_model(name: str) -> torch.nn.Module:
    from mask_adapter.config import build_config
    from mask_adapter.engine import Trainer

    cfg = build_config(str(REPO / CONFIGS[name]), ["SEED", "0", "MODEL.MASK_ADAPTER.IOU_THRESHOLD", "1.01"])
    torch.manual_seed(0)
    model = Trainer.build_model(cfg)
    model.train()
    return model


def make_batch(name: str) -> list[dict]:
    """Two 64x64 images with the same number of ground-truth masks (random rectangles, labels 0-4)."""
    g = torch.Generator().manual_seed(7)
    batch = []
    for i in range(2):
        masks = torch.zeros(NUM_MASKS[name], SIZE, SIZE, dtype=torch.bool)
        for m in masks:
            y, x = torch.randint(0, SIZE // 2, (2,), generator=g).tolist()
            h, w = torch.randint(8, SIZE // 2, (2,), generator=g).tolist()
            m[y : y + h, x : x + w] = True
        inst = Instances((SIZE, SIZE))
        inst.gt_masks = BitMasks(masks)
        inst.gt_classes = torch.randint(0, 5, (len(masks),), generator=g)
        image = torch.randint(0, 256, (3, SIZE, SIZE), generator=g, dtype=torch.uint8)
        batch.append({"image": image, "instances": inst, "image_id": 100 + i, "height": SIZE, "width": SIZE})
    return batch


def trainable_gradients(model: torch.nn.Module, batch: list[dict]) -> dict[str, torch.Tensor]:
    from mask_adapter.utils.ddp import unwrap

    with EventStorage(0):
        losses = model(batch)
    sum(losses.values()).backward()
    grads = {n: p.grad.detach().clone() for n, p in unwrap(model).named_parameters() if p.requires_grad}
    assert grads and all(g is not None for g in grads.values())
    return grads


def _worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        from torch.nn.parallel import DistributedDataParallel

        from mask_adapter.engine import create_ddp_model

        for name in CONFIGS:
            model = create_ddp_model(build_model(name))
            assert isinstance(model, DistributedDataParallel) and model.device_ids is None
            grads = trainable_gradients(model, make_batch(name)[rank : rank + 1])
            torch.save(grads, os.path.join(out_dir, f"{name}_rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # subprocess
def test_ddp_gradient_equals_single_process_gradient(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in CONFIGS:
            reference = trainable_gradients(build_model(name), make_batch(name))
            per_rank = [torch.load(tmp_path / f"{name}_rank{r}.pt", weights_only=True) for r in range(2)]
            assert per_rank[0].keys() == reference.keys()
            for key, ref in reference.items():
                assert ref.abs().max() > 0, (name, key)
                # DDP leaves the same averaged gradient on both processes.
                torch.testing.assert_close(per_rank[0][key], per_rank[1][key], rtol=0, atol=1e-7)
                torch.testing.assert_close(per_rank[0][key], ref, rtol=0, atol=1e-5, msg=f"{name}: {key}")
    finally:
        torch.set_num_threads(previous)
