"""Seeded, resumable training data stream: detectron2's batched loader over two small wrappers.

:class:`ResumableSampler` tags every index of the (rank-sliced, infinite) sampler stream with its position in that
stream and can skip the first ``n`` positions; :class:`PositionSeededMapDataset` seeds ``random``, ``numpy`` and
the CPU ``torch`` generator from ``(SEED, rank, position)`` before calling the mapper (and restores the previous
RNG states afterwards). :func:`build_resumable_train_loader` builds the loader from the config; the sampler's
shuffle seed is ``SEED`` itself (when ``SEED >= 0`` and ``DATALOADER.SAMPLER_TRAIN`` is "TrainingSampler").

Guarantees (when ``SEED >= 0``):
    With ``DATALOADER.ASPECT_RATIO_GROUPING False``, batch ``j`` of a process holds stream positions
    ``[j B, (j + 1) B)`` (B images per process) whatever ``NUM_WORKERS`` is, so it depends only on
    ``(SEED, rank, j)``, and ``--resume`` at iteration k (which skips the first k B positions, see
    ``mask_adapter.engine.Trainer.resume_or_load``) sees exactly the batches of an uninterrupted run. With grouping
    on (detectron2's default), every sample keeps its seeded augmentation, but which samples share a batch depends
    on the worker interleaving and on the aspect buckets, whose content at the checkpoint is not saved: a resumed
    run then skips the consumed samples but composes the next batches differently. With ``SEED < 0`` the stream is
    detectron2's usual random one.

Stream keys: ``(position in this rank's sampler stream, dataset index)`` pairs of ints.
"""

import logging
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetFromList, build_detection_train_loader
from detectron2.data.samplers import TrainingSampler
from detectron2.utils import comm
from torch.utils.data import Dataset, Sampler

logger = logging.getLogger(__name__)

__all__ = ["ResumableSampler", "PositionSeededMapDataset", "build_resumable_train_loader"]

SampleKey = tuple[int, int]  # (position in this rank's sampler stream, dataset index)


class ResumableSampler(Sampler):
    """Wrap an infinite, rank-sliced detectron2 sampler: tag indices with their stream position, skip a prefix.

    Args:
        sampler: e.g. ``TrainingSampler`` (already yields only this rank's share of the stream).
    """

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.start = 0

    def skip(self, num_samples: int) -> None:
        """Start the next iteration of the stream at position ``num_samples`` (samples of this rank)."""
        if num_samples < 0:
            raise ValueError(f"cannot skip a negative number of samples ({num_samples})")
        self.start = int(num_samples)

    def __iter__(self) -> Iterator[SampleKey]:
        for position, index in enumerate(self.sampler):
            if position >= self.start:
                yield position, int(index)


def _sample_seed(seed: int, rank: int, position: int, attempt: int = 0) -> int:
    return int(np.random.SeedSequence([seed, rank, position, attempt]).generate_state(1)[0])


class PositionSeededMapDataset(Dataset):
    """``detectron2.data.MapDataset`` whose random augmentations are a function of the stream position.

    Args:
        dataset: the dataset dicts (list or map-style dataset).
        mapper: callable(dict) -> model input dict, or None to reject the sample (another one is drawn).
        seed: ``SEED``; negative = leave the global RNGs alone (detectron2's default behaviour).
        rank: process rank, mixed into the seed so processes augment differently.
    """

    def __init__(self, dataset: Sequence[dict[str, Any]], mapper: Any, seed: int, rank: int) -> None:
        self.dataset = dataset
        self.mapper = mapper
        self.seed = seed
        self.rank = rank

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        position, index = key if isinstance(key, tuple) else (-1, int(key))
        for attempt in range(100):
            out = self._map(position, index, attempt)
            if out is not None:
                return out
            if attempt >= 3:
                logger.warning(
                    "mapper rejected dataset index %d (attempt %d); drawing another sample",
                    index,
                    attempt,
                )
            index = self._fallback_rng(position, attempt).randrange(len(self.dataset))
        raise RuntimeError("the dataset mapper rejected 100 samples in a row; check the data and the mapper")

    def _fallback_rng(self, position: int, attempt: int) -> random.Random:
        if self.seed < 0:
            return random.Random()
        return random.Random(_sample_seed(self.seed, self.rank, position, attempt + 1))

    def _map(self, position: int, index: int, attempt: int) -> dict[str, Any] | None:
        if self.seed < 0 or position < 0:
            return self.mapper(self.dataset[index])
        states = random.getstate(), np.random.get_state()
        s = _sample_seed(self.seed, self.rank, position, attempt)
        with torch.random.fork_rng(devices=[]):  # CPU generator only; CUDA generators are left alone
            random.seed(s)
            np.random.seed(s)
            torch.default_generator.manual_seed(s)
            try:
                return self.mapper(self.dataset[index])
            finally:
                random.setstate(states[0])
                np.random.set_state(states[1])


_PLACEHOLDER_SAMPLER = object()


def build_resumable_train_loader(cfg: CfgNode, mapper: Any):
    """detectron2's training loader (dataset, sampler, batching from cfg) with a resumable, seeded stream.

    Args:
        cfg: DATASETS.TRAIN, DATALOADER.*, SOLVER.IMS_PER_BATCH, SEED.
        mapper: training mapper.

    Returns:
        The loader; its ``resumable_sampler`` attribute is the :class:`ResumableSampler`.
    """
    from detectron2.data.build import _train_loader_from_config

    seeded = cfg.DATALOADER.SAMPLER_TRAIN == "TrainingSampler" and cfg.SEED >= 0
    # A placeholder sampler keeps detectron2 from building (and seeding) its own TrainingSampler.
    args = _train_loader_from_config(cfg, mapper, sampler=_PLACEHOLDER_SAMPLER if seeded else None)
    if seeded:
        # The shuffle seed is SEED, not a draw from the numpy state left by model building (detectron2's default).
        args["sampler"] = TrainingSampler(len(args["dataset"]), seed=cfg.SEED)
    resumable = ResumableSampler(args["sampler"])
    dicts = args["dataset"]
    if isinstance(dicts, list):
        # serialized storage, as detectron2 does: no copy-on-read memory growth in loader workers
        dicts = DatasetFromList(dicts, copy=False)
    dataset = PositionSeededMapDataset(dicts, mapper, cfg.SEED, comm.get_rank())
    loader = build_detection_train_loader(
        dataset,
        mapper=None,
        sampler=resumable,
        total_batch_size=args["total_batch_size"],
        aspect_ratio_grouping=args["aspect_ratio_grouping"],
        num_workers=args["num_workers"],
    )
    loader.resumable_sampler = resumable
    return loader
