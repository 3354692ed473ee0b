"""Evaluators (table by evaluator_type) and the five-benchmark runner."""

from .benchmarks import BENCHMARKS, evaluate_benchmarks, format_benchmark_table  # noqa: F401
from .build import EVALUATOR_TABLE, build_evaluator  # noqa: F401
from .guard import ImageEvaluationError, guard_evaluation  # noqa: F401
from .instance import InstanceSegEvaluator  # noqa: F401
from .sem_seg import MIOU_CONVENTIONS, OpenVocabSemSegEvaluator, miou_conventions  # noqa: F401
