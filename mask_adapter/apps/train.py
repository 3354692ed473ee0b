"""Train or evaluate any Mask-Adapter model (stage 1, FC-CLIP, MAFT+, Mask2Former+CLIP) with detectron2.

The program behind ``train_net.py`` (and the official names ``train_net_fcclip.py``, ``train_net_maftp.py``,
``train_net_maskadapter.py``); also ``python -m mask_adapter.apps.train``.

    python train_net.py --config-file CONFIG [--num-gpus N] [--eval-only] [--resume] [KEY VALUE ...]

Stage 2 without a fusion step: MODEL.WEIGHTS = the stage-1 checkpoint and MODEL.MASK_ADAPTER.GENERATOR_WEIGHTS =
the base FC-CLIP / MAFT+ checkpoint. Multi-machine: --num-machines, --machine-rank, --dist-url (detectron2's
launcher; "auto" picks a free local port). Without CUDA, --num-gpus N starts N CPU processes that communicate over
gloo. With SEED >= 0, --resume continues exactly the data stream of an uninterrupted run (mask_adapter/data/train_loader.py).

Your own semantic-segmentation folder (images + PNG label maps + an ``id:name,synonym,...`` vocabulary file):
    --register-semseg NAME IMAGES LABELS VOCABULARY   (repeatable; then use NAME in DATASETS.TRAIN / DATASETS.TEST)
"""

import logging
import sys

from detectron2.engine import default_argument_parser, launch
from detectron2.utils import comm

import mask_adapter  # noqa: F401  (registers models, datasets, mappers)
from mask_adapter.config import build_config
from mask_adapter.engine import (
    Trainer,
    check_datasets_registered,
    check_training_config,
    count_parameters,
    load_model_for_evaluation,
    setup,
)
from mask_adapter.utils.cli import add_debug_flag, run_cli

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
    check_datasets_registered(cfg)
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


def parse_args(argv=None):
    """detectron2's standard arguments plus ``--register-semseg`` and ``--debug``."""
    parser = default_argument_parser()
    parser.add_argument(
        "--register-semseg",
        nargs=4,
        action="append",
        metavar=("NAME", "IMAGES", "LABELS", "VOCABULARY"),
        help="register a folder of images + PNG label maps with its vocabulary file as dataset NAME",
    )
    add_debug_flag(parser)
    return parser.parse_args(argv)


def cli(argv=None):
    """Parse the arguments and run ``main`` in 1 or more processes; returns the results (one process) and raises
    on bad input (see ``command_line``)."""
    args = parse_args(argv)
    logger.info("command line arguments: %s", args)
    if args.num_gpus * args.num_machines <= 1:
        return main(args)  # same as launch() for one process, but keeps the results
    # Check the config and the dataset names once, before starting processes that would each fail on them.
    register_user_datasets(args.register_semseg)
    cfg = build_config(args.config_file, args.opts)
    check_datasets_registered(cfg)
    if not args.eval_only:
        check_training_config(cfg, args.num_gpus * args.num_machines)
    return launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


def command_line(argv=None) -> int:
    """The program: bad input ends with one ``error:`` line and exit code 1 (traceback with ``--debug``).

    Returns:
        The exit code.
    """

    def run(args):
        cli(args)
        return 0

    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(command_line())
