"""Semantic-segmentation evaluation (mIoU) for open-vocabulary benchmarks.

Extends detectron2's ``SemSegEvaluator`` (confusion matrix over K classes + 1 ignore bin) with:
- the ignore value taken from the split metadata, so 16-bit ``.tif`` benchmarks (A-847, PC-459) ignore 65535;
- ground-truth values outside [0, K) that are not the ignore value counted as ignored (warned once), instead of
  silently corrupting the confusion matrix;
- a clear error when a prediction's class count K' differs from the dataset's K (wrong vocabulary bound);
- the Pillow / detectron2 / torch / numpy versions in the evaluation log (official issue #20: results depend on
  the Pillow version).

Shapes: predictions ``sem_seg`` (K, H, W) scores at the original image size; labels (H, W) integers.
"""

import logging
from typing import Any

import numpy as np
from detectron2.evaluation.sem_seg_evaluation import SemSegEvaluator

from ..utils.env import environment_versions

__all__ = ["OpenVocabSemSegEvaluator"]

logger = logging.getLogger(__name__)


class OpenVocabSemSegEvaluator(SemSegEvaluator):
    """``SemSegEvaluator`` with metadata ignore labels (255/65535), label-range checks and version logging.

    Args:
        dataset_name: a registered split with ``stuff_classes`` and ``ignore_label`` metadata.
        distributed: gather results from all ranks.
        output_dir: where detectron2 writes ``sem_seg_predictions.json`` (None = nowhere).
        compute_boundary_iou: also compute boundary IoU (slow; off by default, mIoU is the benchmark metric).
    """

    def __init__(
        self,
        dataset_name: str,
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        compute_boundary_iou: bool = False,
    ) -> None:
        super().__init__(dataset_name, distributed=distributed, output_dir=output_dir)
        self._compute_boundary_iou = self._compute_boundary_iou and compute_boundary_iou
        self._warned_range = False

    def reset(self) -> None:
        super().reset()
        versions = ", ".join(f"{k} {v}" for k, v in environment_versions().items())
        logger.info(
            "Semantic evaluation of %s (%d classes, ignore %d) with %s",
            self._dataset_name,
            self._num_classes,
            self._ignore_label,
            versions,
        )

    def _load_gt(self, file_name: str) -> np.ndarray:
        gt = self.sem_seg_loading_fn(self.input_file_to_gt_file[file_name], dtype=int)
        bad = (gt != self._ignore_label) & ((gt < 0) | (gt >= self._num_classes))
        if bad.any():
            if not self._warned_range:
                logger.warning(
                    "%s: label values %s are outside [0, %d) and not the ignore value %d; counted as "
                    "ignored (check the preparation script)",
                    self._dataset_name,
                    np.unique(gt[bad])[:10].tolist(),
                    self._num_classes,
                    self._ignore_label,
                )
                self._warned_range = True
            gt[bad] = self._ignore_label
        return gt

    def process(self, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> None:
        """Accumulate the confusion matrix.

        Args:
            inputs: model inputs with "file_name".
            outputs: dicts with "sem_seg" (K, H, W) scores.
        """
        for inp, out in zip(inputs, outputs):
            scores = out["sem_seg"]
            if scores.shape[0] != self._num_classes:
                raise ValueError(
                    f"{self._dataset_name}: the model predicts {scores.shape[0]} classes but the dataset has "
                    f"{self._num_classes}; bind the dataset's vocabulary (model.set_metadata(MetadataCatalog.get("
                    f"'{self._dataset_name}'))) before evaluating"
                )
            pred = np.array(scores.argmax(dim=0).to(self._cpu_device), dtype=int)
            gt = self._load_gt(inp["file_name"])
            if pred.shape != gt.shape:
                raise ValueError(
                    f"{self._dataset_name}: prediction {pred.shape} and label {gt.shape} of {inp['file_name']} "
                    "differ in size; the model must return sem_seg at the original image size"
                )
            gt[gt == self._ignore_label] = self._num_classes
            self._conf_matrix += np.bincount(
                (self._num_classes + 1) * pred.reshape(-1) + gt.reshape(-1),
                minlength=self._conf_matrix.size,
            ).reshape(self._conf_matrix.shape)
            if self._compute_boundary_iou:
                b_gt, b_pred = (
                    self._mask_to_boundary(gt.astype(np.uint8)),
                    self._mask_to_boundary(pred.astype(np.uint8)),
                )
                self._b_conf_matrix += np.bincount(
                    (self._num_classes + 1) * b_pred.reshape(-1) + b_gt.reshape(-1),
                    minlength=self._conf_matrix.size,
                ).reshape(self._conf_matrix.shape)
            if self._output_dir:
                self._predictions.extend(self.encode_json_sem_seg(pred, inp["file_name"]))
