"""The adapter's semantic activation maps of one image, per segment, and a figure of them.

For each chosen proposal of the model's mask generator: its binary mask (as the adapter sees it: sigmoid >
``MODEL.MASK_ADAPTER.MASK_THRESHOLD``), the K normalised activation maps the head pools the CLIP feature with
(each map is sigmoid(a) / sum(sigmoid(a)) over the CLIP grid, so it sums to 1) and their mean, and the class the
segment gets from plain mask pooling of the CLIP feature versus from the adapter's embedding (and the model's final
class, e.g. after FC-CLIP's geometric ensemble). That contrast is the method's point in one picture.

Shapes: image (H, W, 3) uint8 RGB at its original size; K maps per mask on the h×w CLIP grid of the padded model
input; masks and display maps at (H, W).
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..modeling.adapter.pooling import (
    classification_logits,
    embeddings_from_activation_maps,
    mask_pooling_embeddings,
)

__all__ = [
    "ActivationMaps",
    "SegmentMaps",
    "compute_activation_maps",
    "render_activation_figure",
    "save_activation_figure",
]


@dataclasses.dataclass
class SegmentMaps:
    """One segment: its proposal, binary mask, K normalised maps and its three classifications.

    Attributes:
        proposal: index of the proposal among the generator's masks.
        mask: (H, W) bool binary proposal mask at the original image size.
        maps: (K, h, w) float32 normalised activation maps on the CLIP grid (each sums to 1 over h×w).
        display_maps: (K, H, W) float32, the maps resized to the image (for overlays; not normalised).
        pooling_class, pooling_score: class id and probability from plain mask pooling.
        adapter_class, adapter_score: class id and probability from the adapter's embedding.
        final_class, final_score: the model's classification of the proposal (what the outputs use).
    """

    proposal: int
    mask: np.ndarray
    maps: np.ndarray
    display_maps: np.ndarray
    pooling_class: int
    pooling_score: float
    adapter_class: int
    adapter_score: float
    final_class: int
    final_score: float

    @property
    def mean_map(self) -> np.ndarray:
        """(h, w) mean of the K normalised maps (sums to 1)."""
        return self.maps.mean(axis=0)

    @property
    def mean_display_map(self) -> np.ndarray:
        """(H, W) mean of the display maps."""
        return self.display_maps.mean(axis=0)


@dataclasses.dataclass
class ActivationMaps:
    """The activation maps of one image.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        class_names: display name (first synonym) of each class.
        segments: the chosen segments, highest final score first.
        num_maps: K.
    """

    image: np.ndarray
    class_names: list[str]
    segments: list[SegmentMaps]
    num_maps: int

    def summary(self) -> list[dict[str, Any]]:
        """JSON-ready rows: proposal, area, and class name + score of mask pooling, the adapter and the model."""
        name = self.class_names.__getitem__
        return [
            {
                "proposal": s.proposal,
                "area": int(s.mask.sum()),
                "mask_pooling": {"class": name(s.pooling_class), "score": round(s.pooling_score, 4)},
                "adapter": {"class": name(s.adapter_class), "score": round(s.adapter_score, 4)},
                "final": {"class": name(s.final_class), "score": round(s.final_score, 4)},
            }
            for s in self.segments
        ]


def _to_image(x: torch.Tensor, valid: tuple[int, int], padded: tuple[int, int], out: tuple[int, int]) -> torch.Tensor:
    """(N, h', w') maps over the padded input -> (N, H, W): upsample to the padded size, crop the image, resize."""
    x = F.interpolate(x[None].float(), size=padded, mode="bilinear", align_corners=False)
    x = x[..., : valid[0], : valid[1]]
    return F.interpolate(x, size=out, mode="bilinear", align_corners=False)[0]


@torch.no_grad()
def compute_activation_maps(
    model: Any,
    image: np.ndarray,
    resize: Callable[[np.ndarray], np.ndarray] | None = None,
    max_segments: int = 6,
) -> ActivationMaps:
    """Activation maps of the ``max_segments`` proposals the model is most confident about.

    Args:
        model: a Mask-Adapter model in eval mode with a test vocabulary (``set_vocabulary`` / ``set_metadata``)
            and an adapter (``out_vocab_classifier == "adapter"``).
        image: (H, W, 3) uint8 RGB.
        resize: the model's test-time resize of the image (e.g. the demo predictor's ``ResizeShortestEdge``);
            None feeds the image as it is.
        max_segments: at most this many segments (non-empty binary masks), by the model's final score.

    Returns:
        An :class:`ActivationMaps`.
    """
    if getattr(model, "mask_adapter", None) is None:
        raise ValueError("this model has no Mask-Adapter (it classifies by mask pooling): no activation maps to show")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
    if max_segments < 1:
        raise ValueError(f"max_segments must be >= 1, got {max_segments}")
    height, width = image.shape[:2]
    resized = resize(image) if resize is not None else image
    inputs = [
        {
            "image": torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1))),
            "height": height,
            "width": width,
        }
    ]
    state = model.encode(inputs)
    proposals = model.propose_masks(state, inputs)
    n = proposals.get("num_masks", [proposals["pred_masks"].shape[1]])[0]
    final = model.classify_masks(state, proposals)[0, :n].float().softmax(-1)[:, :-1]  # (n, C)
    mask_logits = proposals["pred_masks"][:, :n].float()
    binary = (mask_logits.sigmoid() > model.mask_threshold).float()
    nonempty = binary[0].flatten(1).any(dim=1)
    final_score, final_class = final.max(dim=-1)
    order = [int(i) for i in torch.argsort(final_score, descending=True) if nonempty[i]][:max_segments]
    names = [c.split(",")[0].strip() for c in state.vocabulary.class_names]
    k = model.mask_adapter.num_output_maps
    if not order:
        return ActivationMaps(image=image, class_names=names, segments=[], num_maps=k)
    idx = torch.as_tensor(order, device=mask_logits.device)
    chosen = binary[:, idx]
    project, scale = model.backbone.project_pooled, model.backbone.logit_scale
    with model.inference_autocast():
        raw = model.mask_adapter(state.dense, chosen, model.inference_options.adapter_chunk)
    raw = raw.to(state.clip_dense.dtype)
    h, w = state.clip_dense.shape[-2:]
    if raw.shape[-2:] != (h, w):
        raw = F.interpolate(raw, size=(h, w), mode="bilinear", align_corners=False)
    # The head's normalisation (embeddings_from_activation_maps): softmax of log-sigmoid over the grid.
    maps = F.softmax(F.logsigmoid(raw.flatten(2)), dim=-1).reshape(len(order), k, h, w)
    adapter_emb = embeddings_from_activation_maps(raw, state.clip_dense, project, k)
    adapter_p = classification_logits(adapter_emb, state.adapter_text, scale, state.synonyms_per_class)[0]
    pooled_emb = mask_pooling_embeddings(mask_logits[:, idx], state.clip_dense, project)
    pooled_p = classification_logits(pooled_emb, state.text, scale, state.synonyms_per_class)[0]
    adapter_p, pooled_p = adapter_p.float().softmax(-1)[:, :-1], pooled_p.float().softmax(-1)[:, :-1]
    valid = tuple(state.images.image_sizes[0])
    padded = tuple(state.images.tensor.shape[-2:])
    masks = _to_image(mask_logits[0, idx], valid, padded, (height, width)).sigmoid() > model.mask_threshold
    display = _to_image(maps.flatten(0, 1), valid, padded, (height, width)).reshape(len(order), k, height, width)
    segments = []
    for j, q in enumerate(order):
        segments.append(
            SegmentMaps(
                proposal=q,
                mask=masks[j].cpu().numpy(),
                maps=maps[j].float().cpu().numpy(),
                display_maps=display[j].float().cpu().numpy(),
                pooling_class=int(pooled_p[j].argmax()),
                pooling_score=float(pooled_p[j].max()),
                adapter_class=int(adapter_p[j].argmax()),
                adapter_score=float(adapter_p[j].max()),
                final_class=int(final_class[q]),
                final_score=float(final_score[q]),
            )
        )
    return ActivationMaps(image=image, class_names=names, segments=segments, num_maps=k)


# ---------------------------------------------------------------------------------------------------- figure
def _heat(values: np.ndarray) -> np.ndarray:
    """(H, W) non-negative values -> (H, W, 3) uint8 colours (inferno), scaled by the map's own maximum."""
    from matplotlib import colormaps

    top = float(values.max())
    scaled = values / top if top > 0 else values
    return (colormaps["inferno"](np.clip(scaled, 0.0, 1.0))[..., :3] * 255).astype(np.uint8)


def _overlay(image: np.ndarray, colour: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    return (image.astype(np.float32) * (1 - alpha) + colour.astype(np.float32) * alpha).astype(np.uint8)


def _mask_tile(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    tile = image.astype(np.float32) * 0.35
    tile[mask] = image[mask] * 0.5 + np.array([0, 255, 120], np.float32) * 0.5
    return tile.astype(np.uint8)


def render_activation_figure(
    result: ActivationMaps, tile_height: int = 96, segments: Sequence[int] | None = None, columns: int = 9
) -> np.ndarray:
    """Per segment: a title (mask pooling vs adapter class), then the binary mask, the mean map and the K maps,
    each overlaid on the image, ``columns`` tiles per line.

    Args:
        result: from :func:`compute_activation_maps`.
        tile_height: height of each tile in pixels (the width keeps the image's aspect ratio).
        segments: indices into ``result.segments`` to draw (default: all).
        columns: tiles per line (the K + 2 tiles of a segment wrap onto several lines).

    Returns:
        (rows, cols, 3) uint8 RGB figure.
    """
    chosen = list(range(len(result.segments))) if segments is None else list(segments)
    h, w = result.image.shape[:2]
    tw = max(8, round(w * tile_height / h))
    small = np.asarray(Image.fromarray(result.image).resize((tw, tile_height), Image.BILINEAR))
    title_h, pad = 16, 3
    n_tiles = result.num_maps + 2
    columns = max(1, min(columns, n_tiles))
    lines = -(-n_tiles // columns)
    block_h = title_h + lines * (tile_height + pad) + pad
    width = columns * (tw + pad) + pad
    canvas = Image.new("RGB", (max(width, 420), max(1, len(chosen)) * block_h + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if not chosen:
        draw.text((pad, pad), "no segment: the generator proposed no non-empty mask", fill=(0, 0, 0))
    names = result.class_names
    for r, si in enumerate(chosen):
        s = result.segments[si]
        y = pad + r * block_h
        title = (
            f"segment {si}: mask pooling -> {names[s.pooling_class]} ({s.pooling_score:.2f}), "
            f"adapter -> {names[s.adapter_class]} ({s.adapter_score:.2f}), final {names[s.final_class]}. "
            f"Tiles: mask, mean, maps 1-{result.num_maps}"
        )
        draw.text((pad, y + 2), title, fill=(0, 0, 0))
        mask_small = np.asarray(Image.fromarray(s.mask.astype(np.uint8) * 255).resize((tw, tile_height))) > 127
        tiles = [_mask_tile(small, mask_small), _overlay(small, _heat(_fit_map(s.mean_display_map, tw, tile_height)))]
        tiles += [_overlay(small, _heat(_fit_map(m, tw, tile_height))) for m in s.display_maps]
        for c, tile in enumerate(tiles):
            row, col = divmod(c, columns)
            canvas.paste(Image.fromarray(tile), (pad + col * (tw + pad), y + title_h + row * (tile_height + pad)))
    return np.asarray(canvas)


def _fit_map(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W) float map resized to (height, width) (bilinear, float)."""
    return np.asarray(Image.fromarray(values.astype(np.float32), mode="F").resize((width, height), Image.BILINEAR))


def save_activation_figure(result: ActivationMaps, path: str, tile_height: int = 96) -> str:
    """Write :func:`render_activation_figure` as a PNG/JPEG (atomically); returns ``path``."""
    from ..utils.atomic import atomic_save_image

    return atomic_save_image(path, Image.fromarray(render_activation_figure(result, tile_height)))
