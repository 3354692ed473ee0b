"""Per-image fault handling of an evaluation run: which image failed, and whether the run goes on.

``guard_evaluation(model, evaluator, skip_failed)`` wraps both for detectron2's ``inference_on_dataset``. When the
model's prediction or the evaluator's processing raises for an image:

- ``skip_failed`` False (default): the run stops with :class:`ImageEvaluationError`, one line naming the file, the
  error, and the flag that lets it continue;
- ``skip_failed`` True (``TEST.SKIP_FAILED_IMAGES`` / ``--skip-failed-images``): the image is left out of the
  metrics, a warning names it, and ``evaluate()`` ends with one warning listing every skipped file; the list is
  also in ``GuardedEvaluator.failures``.
"""

import logging
from typing import Any

from detectron2.evaluation import DatasetEvaluator
from torch import nn

__all__ = ["GuardedEvaluator", "GuardedModel", "ImageEvaluationError", "guard_evaluation"]

logger = logging.getLogger(__name__)

_FAILED_KEY = "__prediction_failed__"
Failure = tuple[str, str]  # (file name, "ErrorType: message")


class ImageEvaluationError(ValueError):
    """An image's prediction or evaluation raised; the message names the file and how to continue past it."""


def _names(inputs: list[dict[str, Any]]) -> str:
    return ", ".join(str(x.get("file_name", f"<image {x.get('image_id', '?')}>")) for x in inputs)


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _stop(stage: str, inputs: list[dict[str, Any]], error: BaseException) -> ImageEvaluationError:
    return ImageEvaluationError(
        f"{stage} failed on image {_names(inputs)} ({_describe(error)}); fix or remove the file, or pass "
        "--skip-failed-images (TEST.SKIP_FAILED_IMAGES True) to evaluate without it"
    )


class GuardedModel(nn.Module):
    """The model, with a prediction error reported with the image's file name (see the module docstring)."""

    def __init__(self, model: nn.Module, failures: list[Failure], skip_failed: bool) -> None:
        super().__init__()
        self.model = model
        self.failures = failures
        self.skip_failed = skip_failed

    def forward(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            return self.model(inputs)
        except Exception as e:  # any error of one image's prediction: report it with the file name
            if not self.skip_failed:
                raise _stop("prediction", inputs, e) from e
            for x in inputs:
                self.failures.append((_names([x]), _describe(e)))
            logger.warning("prediction failed on image %s (%s); skipped", _names(inputs), _describe(e))
            return [{_FAILED_KEY: True} for _ in inputs]


class GuardedEvaluator(DatasetEvaluator):
    """The evaluator, skipping images whose prediction failed and reporting its own per-image errors."""

    def __init__(self, evaluator: DatasetEvaluator, failures: list[Failure], skip_failed: bool) -> None:
        self.evaluator = evaluator
        self.failures = failures
        self.skip_failed = skip_failed

    def reset(self) -> None:
        self.failures.clear()
        self.evaluator.reset()

    def process(self, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> None:
        for x, out in zip(inputs, outputs):
            if out.get(_FAILED_KEY):
                continue
            try:
                self.evaluator.process([x], [out])
            except Exception as e:  # e.g. a prediction of the wrong size: report it with the file name
                if not self.skip_failed:
                    raise _stop("evaluation", [x], e) from e
                self.failures.append((_names([x]), _describe(e)))
                logger.warning("evaluation failed on image %s (%s); skipped", _names([x]), _describe(e))

    def evaluate(self) -> dict[str, Any] | None:
        results = self.evaluator.evaluate()
        if self.failures:
            logger.warning(
                "%d images failed and were left out of the metrics: %s",
                len(self.failures),
                "; ".join(f"{name} ({why})" for name, why in self.failures),
            )
        return results


def guard_evaluation(
    model: nn.Module, evaluator: DatasetEvaluator, skip_failed: bool
) -> tuple[GuardedModel, GuardedEvaluator]:
    """Wrap a model and its evaluator for ``inference_on_dataset`` (see the module docstring).

    Returns:
        (model, evaluator); both share the list of failures (``evaluator.failures``: (file name, error) pairs).
    """
    failures: list[Failure] = []
    return GuardedModel(model, failures, skip_failed), GuardedEvaluator(evaluator, failures, skip_failed)
