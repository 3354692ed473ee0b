#!/usr/bin/env python
"""Train or evaluate any Mask-Adapter model (stage 1, FC-CLIP, MAFT+, Mask2Former+CLIP) with detectron2.

    python train_net.py --config-file CONFIG [--num-gpus N] [--eval-only] [--resume] [KEY VALUE ...]

Multi-machine: --num-machines, --machine-rank, --dist-url (detectron2's launcher). Without CUDA, --num-gpus N
starts N CPU processes that communicate over gloo.
"""
import logging

from detectron2.engine import default_argument_parser, launch
from detectron2.utils import comm

import mask_adapter  # noqa: F401  (registers models, datasets, mappers)
from mask_adapter.checkpoint import MaskAdapterCheckpointer, load_generator_weights
from mask_adapter.engine import Trainer, count_parameters, setup

logger = logging.getLogger("mask_adapter")


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        counts = count_parameters(model)
        logger.info("parameters: %s", counts)
        if comm.is_main_process():
            print("parameters: total {total:,} | trainable {trainable:,} | frozen (without text tower) "
                  "{frozen_without_text_tower:,}".format(**counts))
        MaskAdapterCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        if cfg.MODEL.MASK_ADAPTER.GENERATOR_WEIGHTS:
            load_generator_weights(model, cfg.MODEL.MASK_ADAPTER.GENERATOR_WEIGHTS)
        return Trainer.test(cfg, model)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def cli(argv=None):
    args = default_argument_parser().parse_args(argv)
    return launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    cli()
