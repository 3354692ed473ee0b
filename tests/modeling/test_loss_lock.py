"""Numeric lock of training and inference: a refactor must not change the numbers unnoticed.

Each tiny model (configs/tiny, random tiny CLIP, seeded build) takes LOCK_STEPS AdamW steps on a fixed two-image
batch; the losses of every step and the sums of the inference outputs afterwards are compared with the values
recorded in tests/assets/loss_lock.json (tolerances RTOL, ATOL).

Re-record only for an intended numeric change, and say why in the commit:
    MASK_ADAPTER_RECORD_LOSS_LOCK=1 python -m pytest tests/modeling/test_loss_lock.py
"""

import json
import os
from typing import Any

import pytest
import torch

from tests import ASSETS
from tests._builders import box_instances, tiny_model

LOCK_FILE = ASSETS / "loss_lock.json"
RECORD = os.environ.get("MASK_ADAPTER_RECORD_LOSS_LOCK") == "1"
CLASSES = ["square,box", "circle", "triangle", "sky", "grass"]
THING_IDS = frozenset({0, 1, 2})
LOCK_STEPS = 4
LR = 1e-3
RTOL = 1e-5
ATOL = 1e-6  # near-zero cosine losses
MODELS = {"fcclip": "fcclip_tiny", "maftp": "maftp_tiny", "warmup": "warmup_tiny"}


def _image(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, h // 8, w // 8, generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[0]
    return (img * 255).round().to(torch.uint8)


def _sem_seg(h: int, w: int) -> torch.Tensor:
    sem = torch.full((h, w), 3, dtype=torch.long)
    sem[h // 2 :] = 4
    sem[h // 4 : h // 2, w // 4 : w // 2] = 0
    sem[:, :3] = 255
    return sem


def _train_batch() -> list[dict[str, Any]]:
    grid = [(r * 16, c * 16, r * 16 + 14, c * 16 + 14, (r * 4 + c) % len(CLASSES)) for r in range(3) for c in range(4)]
    return [
        {"image": _image(64, 64, 3), "image_id": 3, "instances": box_instances(64, 64, grid[:10])},
        {
            "image": _image(48, 64, 4),
            "image_id": 4,
            "instances": box_instances(48, 64, [(0, 0, 24, 64, 3), (24, 0, 48, 64, 4), (10, 10, 30, 30, 2)]),
        },
    ]


def _test_batch() -> list[dict[str, Any]]:
    return [
        {"image": _image(64, 64, 1), "sem_seg": _sem_seg(64, 64), "image_id": 1},
        {"image": _image(48, 40, 2), "sem_seg": _sem_seg(48, 40), "image_id": 2, "height": 60, "width": 50},
    ]


def _run(stem: str) -> dict[str, list[float]]:
    """Losses of LOCK_STEPS seeded training steps, then the output sums of one inference pass."""
    model = tiny_model(stem, "SEED", 5, seed=0, classes=CLASSES, thing_ids=sorted(THING_IDS))
    model.train_vocabulary = model.test_vocabulary
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    batch = _train_batch()
    model.train()
    losses: list[float] = []
    for _ in range(LOCK_STEPS):
        loss_dict = model(batch)
        total = sum(loss_dict.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        losses.extend(loss_dict[k].item() for k in sorted(loss_dict))
    model.eval()
    with torch.no_grad():
        results = model(_test_batch())
    sums: list[float] = []
    for r in results:
        sums.append(float(r["sem_seg"].double().sum()))
        if "panoptic_seg" in r:
            sums.append(float(len(r["panoptic_seg"][1])))
        if "instances" in r:
            sums.append(float(r["instances"].scores.double().sum()))
    return {"losses": losses, "outputs": sums}


@pytest.fixture(scope="module")
def recorded() -> dict[str, dict[str, list[float]]]:
    if RECORD:
        return {}
    assert LOCK_FILE.is_file(), f"{LOCK_FILE} is missing; record it with MASK_ADAPTER_RECORD_LOSS_LOCK=1"
    return json.loads(LOCK_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def recording():
    values: dict[str, dict[str, list[float]]] = {}
    yield values
    if RECORD:
        LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        LOCK_FILE.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n", encoding="utf-8")


@pytest.mark.parametrize("name", list(MODELS))
def test_training_and_inference_numbers_are_locked(name, recorded, recording):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = _run(MODELS[name])
    finally:
        torch.set_num_threads(previous)
    assert len(got["losses"]) >= LOCK_STEPS and all(v == v for v in got["losses"])
    if RECORD:
        recording[name] = got
        return
    want = recorded[name]
    assert got["losses"] == pytest.approx(want["losses"], rel=RTOL, abs=ATOL), "training numbers changed"
    assert got["outputs"] == pytest.approx(want["outputs"], rel=RTOL, abs=ATOL), "inference numbers changed"
    # the optimizer steps must act: the last loss differs from the first
    assert got["losses"][-1] != got["losses"][0]
