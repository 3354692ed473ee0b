"""Building a config from a YAML file and command-line ``KEY VALUE`` pairs, with one-line errors for bad input.

yacs reports an unknown key or a value of the wrong type with an assertion or a paragraph; :func:`merge_config`
turns each into one line naming the key, where it came from (the file or the command line) and the fix (for an
unknown key, the closest valid names). :func:`build_config` adds the package's keys, merges, applies the CPU and
seed fallbacks and validates.
"""

import difflib
import logging
import os
import re
from collections.abc import Sequence

import torch
from detectron2.config import CfgNode, get_cfg

from .keys import add_mask_adapter_config
from .resolve import arch_defaults, check_config, resolve_seed

__all__ = ["build_config", "merge_config"]

logger = logging.getLogger(__name__)


def _all_keys(node: CfgNode, prefix: str = "") -> list[str]:
    out = []
    for k, v in node.items():
        full = f"{prefix}{k}"
        out.extend(_all_keys(v, full + ".") if isinstance(v, CfgNode) else [full])
    return out


def _unknown_key_error(cfg: CfgNode, message: str, source: str) -> KeyError:
    """One-line KeyError naming the unknown key, where it came from, and the closest valid keys."""
    key = message.split(":", 1)[-1].strip().strip("'\"")
    close = difflib.get_close_matches(key, _all_keys(cfg), n=3, cutoff=0.8)
    hint = (
        f"; did you mean {' or '.join(close)}?" if close else "; check the spelling against mask_adapter/config/keys.py"
    )
    return KeyError(f"unknown config key {key} (from {source}){hint}")


_TYPE_MISMATCH = re.compile(
    r"Type mismatch \((?P<want><class '(?P<wt>\w+)'>)? ?vs\. ?(<class '(?P<gt>\w+)'>)?\) with values "
    r"\((?P<old>.*) vs\. (?P<new>.*)\) for config key: (?P<key>[\w.]+)"
)


def _type_mismatch_error(message: str, source: str) -> ValueError:
    """One-line ValueError for yacs' "Type mismatch ... for config key: K"."""
    m = _TYPE_MISMATCH.search(message)
    if m is None:
        return ValueError(f"invalid config value (from {source}): {message.splitlines()[0]}")
    return ValueError(
        f"config key {m['key']} (from {source}) needs a value of type {m['wt'] or 'of its default'} like its "
        f"default {m['old']}, got {m['new']!r}; fix the value"
    )


def merge_config(cfg: CfgNode, config_file: str, opts: Sequence[str]) -> CfgNode:
    """Merge a YAML file, then ``KEY VALUE`` pairs, into ``cfg``, with one-line errors for every bad input.

    Args:
        cfg: a config with the package's keys (``add_mask_adapter_config``).
        config_file: YAML file (official or ours).
        opts: "KEY VALUE" pairs from the command line.

    Returns:
        ``cfg``.

    Raises:
        FileNotFoundError: no such config file.
        KeyError: an unknown key in the file or in ``opts``, with the closest valid names.
        ValueError: unreadable YAML, a value of the wrong type, an odd number of ``opts``.
    """
    import yaml

    if not os.path.isfile(config_file):
        raise FileNotFoundError(
            f"config file not found: {config_file}; give an existing YAML file (e.g. configs/tiny/fcclip_tiny.yaml)"
        )
    try:
        cfg.merge_from_file(config_file)
    except KeyError as e:
        if "Non-existent config key" not in str(e):
            raise
        raise _unknown_key_error(cfg, str(e.args[0]), config_file) from None
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(f"config file {config_file} is not valid YAML ({first}); fix the file") from None
    except ValueError as e:
        if "Type mismatch" not in str(e):
            raise
        raise _type_mismatch_error(str(e), config_file) from None
    if len(opts) % 2:
        raise ValueError(f"config overrides need KEY VALUE pairs, got an odd number of items: {list(opts)}")
    try:
        cfg.merge_from_list(list(opts))
    except AssertionError as e:  # yacs reports unknown command-line keys with an assert
        if "Non-existent key" not in str(e):
            raise
        raise _unknown_key_error(cfg, str(e), "the command line") from None
    except ValueError as e:
        if "Type mismatch" not in str(e):
            raise
        raise _type_mismatch_error(str(e), "the command line") from None
    return cfg


def build_config(config_file: str, opts: list[str]) -> CfgNode:
    """Merged, validated config with CPU / seed fallbacks applied (not frozen).

    Args:
        config_file: YAML file (official or ours).
        opts: "KEY VALUE" pairs from the command line.

    Returns:
        The config.

    Raises:
        FileNotFoundError, KeyError, ValueError: see :func:`merge_config`; ValueError also for invalid values
            (:func:`mask_adapter.config.check_config`).
    """
    # imported for their side effect: they register the dataset catalog, mappers and evaluators
    from .. import data, evaluation  # noqa: F401

    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    merge_config(cfg, config_file, opts)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA is not available: running on CPU (MODEL.DEVICE cpu)")
        cfg.MODEL.DEVICE = "cpu"
    if cfg.SOLVER.AMP.ENABLED and cfg.MODEL.DEVICE == "cpu":
        logger.warning("AMP needs CUDA: training in fp32 (SOLVER.AMP.ENABLED False)")
        cfg.SOLVER.AMP.ENABLED = False
    cfg.SEED = resolve_seed(cfg, arch_defaults(cfg.MODEL.META_ARCHITECTURE))  # MAFT+: 123, as its script
    check_config(cfg)
    return cfg
