"""Instance evaluation for splits whose thing ids map into the all-class space (ADE20K, Mapillary Vistas).

detectron2's ``COCOEvaluator`` requires ``thing_dataset_id_to_contiguous_id`` to map onto 0..N_things-1, but
panoptic splits here map thing ids to their index among *all* classes (e.g. ADE "bed" -> 7 of 150). This
subclass translates predicted classes back to dataset ids itself and then runs the unchanged COCO evaluation.
The official COCO API (pycocotools) is used: detectron2's fast evaluator needs the compiled ``detectron2._C``.
"""

from typing import Any

from detectron2.evaluation import COCOEvaluator

__all__ = ["InstanceSegEvaluator"]


class _HideThingMap:
    """Read-only view of a Metadata object without ``thing_dataset_id_to_contiguous_id``."""

    def __init__(self, meta: Any) -> None:
        self._meta = meta

    def __getattr__(self, key: str) -> Any:
        if key == "thing_dataset_id_to_contiguous_id":
            raise AttributeError(key)
        return getattr(self._meta, key)

    def get(self, key: str, default: Any = None) -> Any:
        return default if key == "thing_dataset_id_to_contiguous_id" else self._meta.get(key, default)


class InstanceSegEvaluator(COCOEvaluator):
    """COCO mask/box AP for predictions whose class ids index the split's ``stuff_classes``.

    Args: as ``COCOEvaluator``; ``use_fast_impl`` is always False (no ``detectron2._C`` needed).
    """

    def __init__(self, dataset_name: str, tasks=None, distributed: bool = True, output_dir=None, **kwargs) -> None:
        kwargs["use_fast_impl"] = False
        super().__init__(dataset_name, tasks, distributed, output_dir, **kwargs)

    def _eval_predictions(self, predictions: list[dict[str, Any]], img_ids=None) -> None:
        reverse = {v: k for k, v in self._metadata.thing_dataset_id_to_contiguous_id.items()}
        kept = []
        for p in predictions:
            instances = [
                dict(x, category_id=reverse[x["category_id"]])
                for x in p.get("instances", [])
                if x["category_id"] in reverse
            ]
            kept.append(dict(p, instances=instances))
        meta = self._metadata
        self._metadata = _HideThingMap(meta)
        try:
            super()._eval_predictions(kept, img_ids=img_ids)
        finally:
            self._metadata = meta
