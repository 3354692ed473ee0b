"""Training / evaluation engine: a detectron2 trainer whose builders delegate to the package's tables.

``train_net.py`` is a thin command line over ``setup`` and ``Trainer``.
"""
import logging
import os
import weakref
from collections import OrderedDict
from typing import Any, Dict, List, Optional

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.data import MetadataCatalog, build_detection_test_loader, build_detection_train_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, default_setup
from detectron2.engine.train_loop import TrainerBase
from detectron2.evaluation import DatasetEvaluator, inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import MaskAdapterCheckpointer, load_generator_weights
from .config import add_mask_adapter_config, check_config, resolve_cdt_variant, resolve_dense_projection
from .solver import build_lr_scheduler, build_optimizer

logger = logging.getLogger(__name__)

__all__ = ["Trainer", "setup", "count_parameters", "environment_versions"]

MAFT_META_ARCHITECTURES = ("MAFT_Plus", "MAFTPlus")
MAFT_DEFAULT_SEED = 123


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def create_ddp_model(model: nn.Module) -> nn.Module:
    """DDP for GPU (one device per process) and for CPU processes (gloo); identity in a single process."""
    if comm.get_world_size() == 1:
        return model
    if next(model.parameters()).is_cuda:
        return DistributedDataParallel(model, device_ids=[comm.get_local_rank()], broadcast_buffers=False)
    return DistributedDataParallel(model, broadcast_buffers=False)


def environment_versions() -> Dict[str, str]:
    """Versions that change results (Pillow, detectron2, ...): logged at start-up and with evaluations."""
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "torchvision", "sal-detectron2", "open_clip_torch", "timm", "Pillow", "numpy", "opencv-python-headless"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def count_parameters(model: nn.Module) -> Dict[str, int]:
    """Total, trainable and frozen parameter counts; frozen excludes the CLIP text tower."""
    total = trainable = frozen = 0
    visual_prefix = ("backbone.clip_model.visual.",)
    for name, p in unwrap(model).named_parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
        elif not name.startswith("backbone.clip_model.") or name.startswith(visual_prefix):
            frozen += p.numel()
    return {"total": total, "trainable": trainable, "frozen_without_text_tower": frozen}


class Trainer(DefaultTrainer):
    """detectron2 trainer with the package's mapper / evaluator / optimizer / checkpointer.

    Differences from ``DefaultTrainer``: CPU processes get DDP over gloo; checkpoints load through
    ``MaskAdapterCheckpointer`` (official layouts, clear shape errors); ``MODEL.MASK_ADAPTER.GENERATOR_WEIGHTS``
    is loaded on top of ``MODEL.WEIGHTS`` (stage 2 without a fusion step); every test dataset is evaluated with its
    own vocabulary.
    """

    def __init__(self, cfg: CfgNode) -> None:
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
        """Resume from the last checkpoint in OUTPUT_DIR, or load MODEL.WEIGHTS (+ GENERATOR_WEIGHTS)."""
        resuming = resume and self.checkpointer.has_checkpoint()
        super().resume_or_load(resume=resume)
        generator = self.cfg.MODEL.MASK_ADAPTER.GENERATOR_WEIGHTS
        if generator and not resuming:
            load_generator_weights(unwrap(self.model), generator)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode):
        from .data import build_dataset_mapper

        return build_detection_train_loader(cfg, mapper=build_dataset_mapper(cfg, is_train=True))

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str):
        return build_detection_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: Optional[str] = None) -> DatasetEvaluator:
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
    def test(cls, cfg: CfgNode, model: nn.Module, evaluators: Optional[List[DatasetEvaluator]] = None):
        """Evaluate on every DATASETS.TEST entry, each with its own vocabulary."""
        results: "OrderedDict[str, Any]" = OrderedDict()
        net = unwrap(model)
        previous = getattr(net, "test_vocabulary", None)
        for i, name in enumerate(cfg.DATASETS.TEST):
            net.set_metadata(MetadataCatalog.get(name))
            evaluator = evaluators[i] if evaluators else cls.build_evaluator(cfg, name)
            results[name] = inference_on_dataset(model, cls.build_test_loader(cfg, name), evaluator)
            if comm.is_main_process():
                logger.info("Evaluation results for %s (versions: %s):", name, environment_versions())
                print_csv_format(results[name])
        net.test_vocabulary = previous
        return results[cfg.DATASETS.TEST[0]] if len(results) == 1 else results


def build_config(config_file: str, opts: List[str]) -> CfgNode:
    """Merged, validated config with CPU / seed fallbacks applied (not frozen)."""
    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(opts)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA is not available: running on CPU (MODEL.DEVICE cpu)")
        cfg.MODEL.DEVICE = "cpu"
    if cfg.SOLVER.AMP.ENABLED and cfg.MODEL.DEVICE == "cpu":
        logger.warning("AMP needs CUDA: training in fp32 (SOLVER.AMP.ENABLED False)")
        cfg.SOLVER.AMP.ENABLED = False
    if cfg.MODEL.META_ARCHITECTURE in MAFT_META_ARCHITECTURES and cfg.SEED < 0:
        cfg.SEED = MAFT_DEFAULT_SEED  # the official MAFT+ script always seeds 123
    check_config(cfg)
    return cfg


def setup(args: Any) -> CfgNode:
    """Config from the command line, detectron2's default setup, and a log of the resolved behaviour flags."""
    cfg = build_config(args.config_file, args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="mask_adapter")
    log = logging.getLogger("mask_adapter")
    log.info(
        "resolved: META_ARCHITECTURE=%s DENSE_PROJECTION=%s CDT_VARIANT=%s MASK_THRESHOLD=%s alpha/beta=%s/%s",
        cfg.MODEL.META_ARCHITECTURE,
        resolve_dense_projection(cfg),
        resolve_cdt_variant(cfg),
        cfg.MODEL.MASK_ADAPTER.MASK_THRESHOLD,
        cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_ALPHA,
        cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_BETA,
    )
    log.info("environment: %s", environment_versions())
    return cfg
