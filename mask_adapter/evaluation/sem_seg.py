"""Semantic-segmentation evaluation (mIoU) for open-vocabulary benchmarks.

Extends detectron2's ``SemSegEvaluator`` (confusion matrix over K classes + 1 ignore bin) with:
- the ignore value taken from the split metadata, so 16-bit ``.tif`` benchmarks (A-847, PC-459) ignore 65535;
- ground-truth values outside [0, K) that are not the ignore value counted as ignored (warned once), instead of
  silently corrupting the confusion matrix;
- ground truth read from the panoptic PNG (segment -> its category, unlabelled -> ignore) for panoptic splits
  without a semantic label folder (a user's COCO panoptic JSON);
- a clear error when a prediction's class count K' differs from the dataset's K (wrong vocabulary bound);
- the Pillow / detectron2 / torch / numpy versions in the evaluation log (official issue #20: results depend on
  the Pillow version);
- mIoU under both averaging conventions detectron2 has used, each named in the log (:func:`miou_conventions`):
  ``mIoU`` averages the classes present in the ground truth (detectron2 after 0.6; the published numbers use it),
  ``mIoU_d2v06`` averages the classes present in the ground truth *or* the prediction (detectron2 0.6, where a
  class that is only predicted counts with IoU 0). On vocabularies much larger than the classes of an image set
  (PC-459, A-847) the two differ by several points.

Shapes: predictions ``sem_seg`` (K, H, W) scores at the original image size; labels (H, W) integers.
"""

import logging
from typing import Any

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation.sem_seg_evaluation import SemSegEvaluator, load_image_into_numpy_array
from PIL import Image

from ..utils.env import environment_versions

__all__ = ["MIOU_CONVENTIONS", "OpenVocabSemSegEvaluator", "miou_conventions"]

logger = logging.getLogger(__name__)


# Result key -> what it averages; printed in the evaluation log and under the benchmark table.
MIOU_CONVENTIONS: dict[str, str] = {
    "mIoU": "mean IoU over the classes present in the ground truth (detectron2 > 0.6; the published numbers)",
    "mIoU_d2v06": "mean IoU over the classes present in the ground truth or the prediction (detectron2 0.6)",
}


def miou_conventions(conf_matrix: np.ndarray) -> dict[str, float]:
    """mIoU (%) of a confusion matrix under both conventions, with the class counts they average.

    Args:
        conf_matrix: (K + 1, K + 1) counts as detectron2's ``SemSegEvaluator`` accumulates them: row = predicted
            class, column = ground-truth class, the last row/column = ignored pixels (left out here).

    Returns:
        {"mIoU": mean over classes with ground-truth pixels, "mIoU_d2v06": sum of those IoUs divided by the number
        of classes with ground-truth or predicted pixels, "classes_gt": that first count, "classes_gt_or_pred":
        the second}. NaN when no class has ground-truth pixels.
    """
    m = np.asarray(conf_matrix, dtype=np.float64)[:-1, :-1]
    tp = np.diagonal(m)
    pos_gt, pos_pred = m.sum(axis=0), m.sum(axis=1)
    in_gt = pos_gt > 0
    in_any = (pos_gt + pos_pred) > 0
    iou = np.zeros_like(tp)
    iou[in_gt] = tp[in_gt] / (pos_gt + pos_pred - tp)[in_gt]
    n_gt, n_any = int(in_gt.sum()), int(in_any.sum())
    total = float(iou[in_gt].sum())
    return {
        "mIoU": 100.0 * total / n_gt if n_gt else float("nan"),
        "mIoU_d2v06": 100.0 * total / n_any if n_gt else float("nan"),
        "classes_gt": n_gt,
        "classes_gt_or_pred": n_any,
    }


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
        records = DatasetCatalog.get(dataset_name)
        if all("sem_seg_file_name" in r for r in records):
            super().__init__(dataset_name, distributed=distributed, output_dir=output_dir)
            self._compute_boundary_iou = self._compute_boundary_iou and compute_boundary_iou
        else:  # detectron2's __init__ needs sem_seg_file_name in every record; set the same fields here
            self._init_from_panoptic(dataset_name, records, distributed, output_dir)
        self._warned_range = False

    def _init_from_panoptic(
        self, dataset_name: str, records: list[dict[str, Any]], distributed: bool, output_dir: str | None
    ) -> None:
        missing = [r["file_name"] for r in records if "sem_seg_file_name" not in r and "pan_seg_file_name" not in r]
        if missing:
            raise ValueError(
                f"{dataset_name}: {missing[0]} has neither a semantic nor a panoptic label; the semantic evaluator "
                "needs one of them"
            )
        self._logger = logging.getLogger("detectron2.evaluation.sem_seg_evaluation")
        self._dataset_name, self._distributed, self._output_dir = dataset_name, distributed, output_dir
        self._cpu_device = torch.device("cpu")
        self.input_file_to_gt_file = {
            r["file_name"]: r.get("sem_seg_file_name") or (r["pan_seg_file_name"], r["segments_info"]) for r in records
        }
        meta = MetadataCatalog.get(dataset_name)
        c2d = meta.get("stuff_dataset_id_to_contiguous_id")
        self._contiguous_id_to_dataset_id = {v: k for k, v in c2d.items()} if c2d else None
        self._class_names = meta.stuff_classes
        self.sem_seg_loading_fn = load_image_into_numpy_array
        self._num_classes = len(meta.stuff_classes)
        self._ignore_label = meta.ignore_label
        self._compute_boundary_iou = False

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

    def evaluate(self) -> "dict[str, Any] | None":
        """detectron2's metrics plus ``mIoU_d2v06`` (the detectron2 0.6 convention); both conventions are logged.

        ``mIoU`` is recomputed here under the ground-truth-classes convention whatever detectron2 version is
        installed, so the number does not change with the installed release.
        """
        results = super().evaluate()
        if results is None:  # not the main process
            return None
        conv = miou_conventions(self._conf_matrix)
        res = results["sem_seg"]
        res["mIoU"] = conv["mIoU"]
        res["mIoU_d2v06"] = conv["mIoU_d2v06"]
        logger.info(
            "%s: mIoU %.2f = %s, %d classes; mIoU_d2v06 %.2f = %s, %d classes",
            self._dataset_name,
            conv["mIoU"],
            MIOU_CONVENTIONS["mIoU"],
            conv["classes_gt"],
            conv["mIoU_d2v06"],
            MIOU_CONVENTIONS["mIoU_d2v06"],
            conv["classes_gt_or_pred"],
        )
        return results

    def _load_gt(self, file_name: str) -> np.ndarray:
        source = self.input_file_to_gt_file[file_name]
        if isinstance(source, tuple):
            gt = self._semantic_from_panoptic(*source)
        else:
            gt = self.sem_seg_loading_fn(source, dtype=int)
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

    def _semantic_from_panoptic(self, png: str, segments: list[dict[str, Any]]) -> np.ndarray:
        """(H, W) contiguous class ids of a panoptic PNG (id = R + 256 G + 256^2 B); unlabelled -> ignore."""
        rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        gt = np.full(ids.shape, self._ignore_label, dtype=int)
        for s in segments:
            gt[ids == s["id"]] = s["category_id"]
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
