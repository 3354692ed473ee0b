#!/usr/bin/env python
"""Train or evaluate any Mask-Adapter model (stage 1, FC-CLIP, MAFT+, Mask2Former+CLIP) with detectron2.

    python train_net.py --config-file CONFIG [--num-gpus N] [--eval-only] [--resume] [KEY VALUE ...]

Stage 2 without a fusion step: MODEL.WEIGHTS = the stage-1 checkpoint and MODEL.MASK_ADAPTER.GENERATOR_WEIGHTS =
the base FC-CLIP / MAFT+ checkpoint. Multi-machine: --num-machines, --machine-rank, --dist-url (detectron2's
launcher; "auto" picks a free local port). Without CUDA, --num-gpus N starts N CPU processes that communicate over
gloo. With SEED >= 0, --resume continues exactly the data stream of an uninterrupted run (mask_adapter/data/train_loader.py).

Your own semantic-segmentation folder (images + PNG label maps + an ``id:name,synonym,...`` vocabulary file):
    --register-semseg NAME IMAGES LABELS VOCABULARY   (repeatable; then use NAME in DATASETS.TRAIN / DATASETS.TEST)
"""

import logging

from detectron2.engine import default_argument_parser, launch
from detectron2.utils import comm

import mask_adapter  # noqa: F401  (registers models, datasets, mappers)
from mask_adapter.engine import Trainer, count_parameters, load_model_for_evaluation, setup

logger = logging.getLogger("mask_adapter")


def register_user_datasets(specs) -> None:
    """Register ``--register-semseg NAME IMAGES LABELS VOCABULARY`` folders (in every process)."""
    from mask_adapter.data.catalog import register_custom_semseg

    for name, images, labels, vocabulary in specs or ():
        register_custom_semseg(name, images, labels, vocabulary)


def main(args):
    """One process: evaluate (``--eval-only``) or train; returns the evaluation results (main process)."""
    register_user_datasets(getattr(args, "register_semseg", None))
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        counts = count_parameters(model)
        logger.info("parameters: %s", counts)
        if comm.is_main_process():
            print(
                "parameters: total {total:,} | trainable {trainable:,} | frozen (without text tower) "
                "{frozen_without_text_tower:,}".format(**counts)
            )
        load_model_for_evaluation(cfg, model, resume=args.resume)
        return Trainer.test(cfg, model)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
    return getattr(trainer, "_last_eval_results", None)


def cli(argv=None):
    """Parse detectron2's standard arguments and launch ``main`` in 1 or more processes."""
    parser = default_argument_parser()
    parser.add_argument(
        "--register-semseg",
        nargs=4,
        action="append",
        metavar=("NAME", "IMAGES", "LABELS", "VOCABULARY"),
        help="register a folder of images + PNG label maps with its vocabulary file as dataset NAME",
    )
    args = parser.parse_args(argv)
    logger.info("command line arguments: %s", args)
    if args.num_gpus * args.num_machines <= 1:
        return main(args)  # same as launch() for one process, but keeps the results
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
