"""Training / evaluation engine: a detectron2 trainer whose builders delegate to the package's tables.

``train_net.py`` is a thin command line over ``setup`` and ``Trainer``. The training data stream is seeded and
resumable (when ``SEED >= 0``): see :mod:`mask_adapter.data.train_loader` for the loader and its guarantees;
``Trainer.resume_or_load`` makes the stream skip the samples a resumed run already consumed.
"""

import contextlib
import difflib
import errno
import logging
import os
import weakref
from collections import OrderedDict
from typing import Any

import torch
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog, build_detection_test_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, default_setup, hooks
from detectron2.engine.train_loop import TrainerBase
from detectron2.evaluation import DatasetEvaluator, inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, EventWriter, JSONWriter, TensorboardXWriter
from detectron2.utils.logger import setup_logger
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import MaskAdapterCheckpointer, load_generator_weights
from .config import arch_defaults, build_config, resolve_cdt_variant, resolve_dense_projection
from .data.train_loader import build_resumable_train_loader
from .evaluation.guard import guard_evaluation
from .solver import build_lr_scheduler, build_optimizer
from .utils.atomic import OutputWriteError, os_error_cause, output_write_error
from .utils.ddp import unwrap
from .utils.env import environment_versions
from .utils.progress import eval_progress

logger = logging.getLogger(__name__)

__all__ = [
    "Trainer",
    "setup",
    "check_datasets_registered",
    "check_resumable",
    "check_training_config",
    "count_parameters",
    "create_ddp_model",
    "load_model_for_evaluation",
]


def create_ddp_model(model: nn.Module) -> nn.Module:
    """DDP for GPU (one device per process) and for CPU processes (gloo, no device_ids); identity in one process.

    Only the adapter (and void embedding) train, and every one of their parameters enters every loss (the loss
    functions keep the graph even with no valid slot), so ``find_unused_parameters`` stays False.
    """
    if comm.get_world_size() == 1:
        return model
    if next(model.parameters()).is_cuda:
        return DistributedDataParallel(model, device_ids=[comm.get_local_rank()], broadcast_buffers=False)
    return DistributedDataParallel(model, broadcast_buffers=False)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total, trainable and frozen parameter counts; frozen excludes the CLIP text tower.

    Returns:
        {"total", "trainable", "frozen_without_text_tower"}: numbers of scalars.
    """
    total = trainable = frozen = 0
    visual_prefix = ("backbone.clip_model.visual.",)
    for name, p in unwrap(model).named_parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
        elif not name.startswith("backbone.clip_model.") or name.startswith(visual_prefix):
            frozen += p.numel()
    return {"total": total, "trainable": trainable, "frozen_without_text_tower": frozen}


# ---------------------------------------------------------------------------------------------- output folder
# Errors of a write that say the output folder cannot take the run's files (rather than a bug).
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO})


@contextlib.contextmanager
def output_folder_errors(folder: str) -> Any:
    """A full disk, a read-only or unwritable OUTPUT_DIR while the run writes its log, metrics or checkpoints ends
    with one :class:`OutputWriteError` line naming the folder and the fix, instead of tracebacks."""
    try:
        yield
    except OutputWriteError:
        raise
    except Exception as e:
        cause = os_error_cause(e)
        if cause is None or cause.errno not in _OUTPUT_ERRNOS:
            raise
        raise output_write_error(cause, f"to the output folder {folder} (OUTPUT_DIR)") from None


def stop_on_log_file_errors(folder: str) -> None:
    """Make the log files under ``folder`` stop the run at their first failed write (one line, through
    :func:`output_folder_errors`) instead of printing a "Logging error" traceback for every later message.

    The failed file is closed (what it could not write is lost either way) and its handler removed.
    """
    root = os.path.abspath(folder) + os.sep
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]
    for log in loggers:
        for handler in list(getattr(log, "handlers", ())):
            stream = getattr(handler, "stream", None)
            name = getattr(stream, "name", None)
            if not isinstance(name, str) or not os.path.abspath(name).startswith(root):
                continue
            if getattr(handler, "_stops_on_error", False):
                continue
            handler._stops_on_error = True
            handler.handleError = _failing_handle_error(handler, name, loggers)


def _failing_handle_error(handler: logging.Handler, name: str, loggers: list[logging.Logger]) -> Any:
    original = handler.handleError

    def handle_error(record: logging.LogRecord) -> None:
        import sys

        error = sys.exc_info()[1]
        if not isinstance(error, OSError) or error.errno not in _OUTPUT_ERRNOS:
            return original(record)
        for log in loggers:
            if handler in log.handlers:
                log.removeHandler(handler)
        with contextlib.suppress(Exception):
            handler.stream.close()  # closes the file even when the final flush fails (nothing is retried at exit)
        raise output_write_error(error, f"the training log {name}") from None

    return handle_error


# ---------------------------------------------------------------------------------------------- trainer
def maybe_load_generator_weights(cfg: CfgNode, model: nn.Module) -> None:
    """Load ``MODEL.MASK_ADAPTER.GENERATOR_WEIGHTS`` (sem_seg_head.* and void) on top of MODEL.WEIGHTS, if set."""
    if cfg.MODEL.MASK_ADAPTER.GENERATOR_WEIGHTS:
        load_generator_weights(unwrap(model), cfg.MODEL.MASK_ADAPTER.GENERATOR_WEIGHTS)


def load_model_for_evaluation(cfg: CfgNode, model: nn.Module, resume: bool = False) -> None:
    """``--eval-only`` loading: the last checkpoint of OUTPUT_DIR (``resume``) or MODEL.WEIGHTS + GENERATOR_WEIGHTS.

    Args:
        cfg: the config.
        model: the built model.
        resume: prefer OUTPUT_DIR/last_checkpoint when it exists.
    """
    checkpointer = MaskAdapterCheckpointer(model, save_dir=cfg.OUTPUT_DIR)
    resuming = resume and checkpointer.has_checkpoint()
    if resuming:
        check_resumable(checkpointer)
    checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=resume)
    if not resuming:
        maybe_load_generator_weights(cfg, model)


def _readable_checkpoint(path: str) -> str:
    """ "" if ``path`` looks complete from its structure (a cheap check, no tensor is read), else what is wrong."""
    import zipfile

    from .checkpoint import checkpoint_format

    if not os.path.isfile(path):
        return "it does not exist"
    kind = checkpoint_format(path)
    if kind == "empty":
        return "it is empty (0 bytes)"
    if kind == "unknown":
        return "it is not a PyTorch/safetensors checkpoint"
    if kind == "zip" and not zipfile.is_zipfile(path):
        return "it is truncated (an interrupted write or a full disk)"
    return ""


def check_resumable(checkpointer: Any) -> None:
    """Before ``--resume`` loads the checkpoint that OUTPUT_DIR/last_checkpoint names: if that file is missing,
    empty or truncated, one line naming it, the earlier complete checkpoint to resume from instead (and how), or
    that deleting the tag starts over.

    Raises:
        ValueError: the tagged checkpoint is unreadable.
    """
    if not checkpointer.has_checkpoint():
        return
    path = checkpointer.get_checkpoint_file()
    problem = _readable_checkpoint(path)
    if not problem:
        return
    folder = checkpointer.save_dir
    tag = os.path.join(folder, "last_checkpoint")
    others = [
        os.path.join(folder, n)
        for n in os.listdir(folder)
        if n.endswith(".pth") and not n.startswith(".") and n != os.path.basename(path)
    ]
    complete = sorted((p for p in others if not _readable_checkpoint(p)), key=os.path.getmtime)
    if complete:
        earlier = os.path.basename(complete[-1])
        fix = (
            f"delete it and resume from the previous complete checkpoint {earlier}: "
            f"echo {earlier} > {tag}, then run again with --resume"
        )
    else:
        fix = f"there is no earlier complete checkpoint in {folder}: delete it and {tag} to start training over"
    raise ValueError(
        f"cannot resume: the last training checkpoint {path} (named in {tag}) is unusable: {problem}; {fix}"
    )


class KeepLastCheckpointTag(hooks.BestCheckpointer):
    """detectron2's BestCheckpointer (writes ``model_best.pth`` when the metric improves) that leaves the
    ``last_checkpoint`` tag on the latest periodic checkpoint, so ``--resume`` continues from the newest state, and
    whose best score is part of every checkpoint, so a resumed run replaces ``model_best.pth`` only by a better one.
    """

    def _best_checking(self) -> None:
        previous = self._checkpointer.get_checkpoint_file() if self._checkpointer.has_checkpoint() else ""
        super()._best_checking()
        if previous and comm.is_main_process():
            self._checkpointer.tag_last_checkpoint(os.path.basename(previous))

    def state_dict(self) -> dict[str, Any]:
        """The best score so far, saved in every checkpoint so that a resumed run does not forget it."""
        return {"best_metric": self.best_metric, "best_iter": getattr(self, "best_iter", None)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_metric = state.get("best_metric")
        self.best_iter = state.get("best_iter")


class Trainer(DefaultTrainer):
    """detectron2 trainer with the package's mapper / evaluator / optimizer / checkpointer.

    Differences from ``DefaultTrainer``: CPU processes get DDP over gloo; checkpoints load through
    ``MaskAdapterCheckpointer`` (official layouts, clear shape errors); ``MODEL.MASK_ADAPTER.GENERATOR_WEIGHTS``
    is loaded on top of ``MODEL.WEIGHTS`` (stage 2 without a fusion step); every test dataset is evaluated with its
    own vocabulary; the data stream is seeded and resumable (:mod:`mask_adapter.data.train_loader`); with
    ``TEST.EVAL_PERIOD > 0`` the checkpoint with the best mIoU of the first test set is kept as ``model_best.pth``.

    Attributes:
        log_period: iterations between metric writes (log, metrics.json, tensorboard); detectron2 uses 20.
        metrics_window: median window of smoothed scalars in metrics.json; 1 writes each iteration's value.
    """

    log_period: int = 20
    metrics_window: int = 20

    def __init__(self, cfg: CfgNode) -> None:
        check_training_config(cfg, comm.get_world_size())
        TrainerBase.__init__(self)
        if not logger.isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model)
        trainer_cls = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self._trainer = trainer_cls(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = MaskAdapterCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def resume_or_load(self, resume: bool = True) -> None:
        """Resume from the last checkpoint in OUTPUT_DIR, or load MODEL.WEIGHTS (+ GENERATOR_WEIGHTS).

        When resuming at iteration k, the data stream skips the k x (IMS_PER_BATCH / world size) samples this
        process already consumed, so training continues as if uninterrupted.
        """
        resuming = resume and self.checkpointer.has_checkpoint()
        if resuming:
            check_resumable(self.checkpointer)
        super().resume_or_load(resume=resume)
        if not resuming:  # a resumed stage-2 checkpoint already holds its generator
            maybe_load_generator_weights(self.cfg, self.model)
        sampler = getattr(self.data_loader, "resumable_sampler", None)
        if sampler is not None:
            per_process = self.cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size()
            sampler.skip(self.start_iter * per_process)
            if self.start_iter:
                logger.info(
                    "resuming at iteration %d: skipping the %d samples per process already consumed%s",
                    self.start_iter,
                    self.start_iter * per_process,
                    (
                        " (DATALOADER.ASPECT_RATIO_GROUPING is on: the next batches are composed differently "
                        "from an uninterrupted run)"
                        if self.cfg.DATALOADER.ASPECT_RATIO_GROUPING
                        else ""
                    ),
                )

    def train(self) -> dict[str, Any] | None:
        """``DefaultTrainer.train``; a non-finite loss ends with one line naming the iteration and what to try."""
        try:
            with output_folder_errors(self.cfg.OUTPUT_DIR):
                return super().train()
        except FloatingPointError as e:
            first = str(e).strip().splitlines()[0].rstrip("!")
            raise FloatingPointError(
                f"{first}; lower SOLVER.BASE_LR, keep SOLVER.CLIP_GRADIENTS enabled, or check the images of that "
                "iteration (SEED makes it reproducible)"
            ) from e

    def build_hooks(self) -> list[hooks.HookBase]:
        """DefaultTrainer's hooks (timer, LR scheduler, checkpointer, evaluation, writers) with ``log_period``."""
        cfg = self.cfg
        ret: list[hooks.HookBase] = [hooks.IterationTimer(), hooks.LRScheduler()]
        if comm.is_main_process():
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD))

        def test_and_save_results():
            self._last_eval_results = self.test(self.cfg, self.model)
            return self._last_eval_results

        ret.append(hooks.EvalHook(cfg.TEST.EVAL_PERIOD, test_and_save_results))
        if comm.is_main_process() and cfg.TEST.EVAL_PERIOD > 0 and cfg.DATASETS.TEST:
            # Stage 2 should start from the best stage-1 checkpoint, not the last one (official issue #18).
            metric = "sem_seg/mIoU" if len(cfg.DATASETS.TEST) == 1 else f"{cfg.DATASETS.TEST[0]}/sem_seg/mIoU"
            ret.append(KeepLastCheckpointTag(cfg.TEST.EVAL_PERIOD, self.checkpointer, metric, mode="max"))
        if comm.is_main_process():
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=self.log_period))
        return ret

    def build_writers(self) -> list[EventWriter]:
        """Console printer, metrics.json (median over ``metrics_window``) and tensorboard."""
        os.makedirs(self.cfg.OUTPUT_DIR, exist_ok=True)
        return [
            CommonMetricPrinter(self.max_iter),
            JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"), window_size=self.metrics_window),
            TensorboardXWriter(self.cfg.OUTPUT_DIR, window_size=self.metrics_window),
        ]

    @classmethod
    def build_train_loader(cls, cfg: CfgNode):
        from .data import build_dataset_mapper

        # Kept from the official code: its stage-1 mapper ignored INPUT.COLOR_AUG_SSD (the warmup YAML sets it).
        ignore_color_aug = not arch_defaults(cfg.MODEL.META_ARCHITECTURE).color_aug_ssd
        mapper = build_dataset_mapper(cfg, is_train=True, ignore_color_aug=ignore_color_aug)
        return build_resumable_train_loader(cfg, mapper)

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str):
        from .data import build_dataset_mapper

        return build_detection_test_loader(cfg, dataset_name, mapper=build_dataset_mapper(cfg, is_train=False))

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: str | None = None) -> DatasetEvaluator:
        from .evaluation import build_evaluator

        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg: CfgNode, optimizer: torch.optim.Optimizer):
        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def test(cls, cfg: CfgNode, model: nn.Module, evaluators: list[DatasetEvaluator] | None = None):
        """Evaluate on every DATASETS.TEST entry, each with its own vocabulary.

        Returns:
            The results dict of the only test set, or {dataset name: results} for several.
        """
        results: OrderedDict[str, Any] = OrderedDict()
        net = unwrap(model)
        previous = getattr(net, "test_vocabulary", None)
        for i, name in enumerate(cfg.DATASETS.TEST):
            net.set_metadata(MetadataCatalog.get(name))
            evaluator = evaluators[i] if evaluators else cls.build_evaluator(cfg, name)
            # an image whose prediction raises stops the run with its file name (TEST.SKIP_FAILED_IMAGES skips it)
            guarded_model, evaluator = guard_evaluation(model, evaluator, cfg.TEST.SKIP_FAILED_IMAGES)
            loader = eval_progress(cls.build_test_loader(cfg, name), name)
            results[name] = inference_on_dataset(guarded_model, loader, evaluator)
            if comm.is_main_process():
                logger.info("Evaluation results for %s (versions: %s):", name, environment_versions())
                print_csv_format(results[name])
        net.test_vocabulary = previous
        return results[cfg.DATASETS.TEST[0]] if len(results) == 1 else results


def check_datasets_registered(cfg: CfgNode) -> None:
    """Every name in DATASETS.TRAIN / DATASETS.TEST is a registered dataset; else one KeyError line with the
    closest names and how to register your own.

    Raises:
        KeyError: an unregistered name.
    """
    from detectron2.data import DatasetCatalog

    registered = DatasetCatalog.list()
    for field in ("TRAIN", "TEST"):
        for name in getattr(cfg.DATASETS, field):
            if name in registered:
                continue
            close = difflib.get_close_matches(name, registered, n=3, cutoff=0.6)
            openvocab = sorted(n for n in registered if n.startswith("openvocab_"))
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise KeyError(
                f"dataset {name!r} (DATASETS.{field}) is not registered; {hint}registered names include "
                f"{', '.join(openvocab[:12])}, ... ({len(registered)} in all); register your own folder with "
                "--register-semseg NAME IMAGES LABELS VOCABULARY"
            )


def check_training_config(cfg: CfgNode, world_size: int = 1) -> None:
    """The solver values training needs, checked before anything is built (one line each instead of an assertion
    deep in detectron2's loader or scheduler).

    Raises:
        ValueError: SOLVER.IMS_PER_BATCH not a positive multiple of the number of processes, SOLVER.MAX_ITER < 1,
            SOLVER.CHECKPOINT_PERIOD < 1.
    """
    batch, max_iter, period = cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.MAX_ITER, cfg.SOLVER.CHECKPOINT_PERIOD
    if batch < 1 or batch % world_size:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH is {batch}: the total batch size must be a positive multiple of the {world_size} "
            f"training process(es); set SOLVER.IMS_PER_BATCH {max(world_size, 1) * 2} (for example)"
        )
    if max_iter < 1:
        raise ValueError(
            f"SOLVER.MAX_ITER is {max_iter}: training needs at least 1 iteration; set SOLVER.MAX_ITER to a positive "
            "number (or pass --eval-only to evaluate without training)"
        )
    if period < 1:
        raise ValueError(
            f"SOLVER.CHECKPOINT_PERIOD is {period}; set it to a positive number of iterations (e.g. {max_iter})"
        )


def setup(args: Any) -> CfgNode:
    """Config from the command line, detectron2's default setup, and a log of the resolved behaviour flags."""
    cfg = build_config(args.config_file, args.opts)
    if not getattr(args, "eval_only", False):
        check_training_config(cfg, comm.get_world_size())  # before OUTPUT_DIR is created
    cfg.freeze()
    with output_folder_errors(cfg.OUTPUT_DIR):
        if cfg.OUTPUT_DIR and comm.is_main_process():
            # the log files default_setup opens (the same cached loggers), made to stop at their first failed write
            os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
            setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="fvcore")
            setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank())
            stop_on_log_file_errors(cfg.OUTPUT_DIR)
        default_setup(cfg, args)
        setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="mask_adapter")
        stop_on_log_file_errors(cfg.OUTPUT_DIR)
    log = logging.getLogger("mask_adapter")
    log.info(
        "resolved: META_ARCHITECTURE=%s DENSE_PROJECTION=%s CDT_VARIANT=%s MASK_THRESHOLD=%s alpha/beta=%s/%s",
        cfg.MODEL.META_ARCHITECTURE,
        resolve_dense_projection(cfg, arch_defaults(cfg.MODEL.META_ARCHITECTURE)),
        resolve_cdt_variant(cfg),
        cfg.MODEL.MASK_ADAPTER.MASK_THRESHOLD,
        cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_ALPHA,
        cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_BETA,
    )
    log.info("environment: %s", environment_versions())
    return cfg
