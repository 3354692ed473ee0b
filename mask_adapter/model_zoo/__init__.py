"""The project's YAML configs as package data: ``get_config_file("tiny/fcclip_tiny.yaml")`` -> an absolute path.

The repository's ``configs/`` folder is the one source of the configs. Building a wheel or sdist copies it into
``mask_adapter/model_zoo/configs/`` (see ``setup.py``), so an installed package carries every config with its
``_BASE_`` files beside it. In a source checkout or an editable install that copy does not exist, and the lookup
falls back to the ``configs/`` folder of the repository holding this package. Both places are found relative to
this file, never relative to the working directory.
"""

from pathlib import Path

__all__ = ["config_root", "get_config_file"]

_PACKAGED = Path(__file__).resolve().parent / "configs"
_REPOSITORY = Path(__file__).resolve().parents[2] / "configs"


def config_root() -> Path:
    """The folder the configs are read from: the packaged copy if present, else the repository's ``configs/``.

    Raises:
        FileNotFoundError: neither exists (a broken installation).
    """
    for root in (_PACKAGED, _REPOSITORY):
        if root.is_dir():
            return root
    raise FileNotFoundError(
        f"no config folder found ({_PACKAGED} or {_REPOSITORY}); reinstall mask_adapter "
        "(pip install .) from a complete checkout"
    )


def get_config_file(rel_path: str) -> Path:
    """Absolute path of a shipped config.

    Args:
        rel_path: the path inside the repository's ``configs/`` folder, e.g. ``"tiny/fcclip_tiny.yaml"`` or
            ``"mixed-mask-training/maftp/semantic/train_semantic_base_eval_a150.yaml"``; a leading ``"configs/"``
            is accepted too (the form ``mask_adapter.checkpoint.RELEASED_MODELS`` uses).

    Returns:
        The existing file.

    Raises:
        FileNotFoundError: no such config (the message names the folder searched).
    """
    rel = Path(rel_path)
    if rel.is_absolute() or ".." in rel.parts:
        raise FileNotFoundError(f"config {rel_path!r} is not a path inside configs/; give e.g. 'tiny/fcclip_tiny.yaml'")
    if rel.parts[:1] == ("configs",):
        rel = Path(*rel.parts[1:])
    root = config_root()
    path = root / rel
    if not path.is_file():
        raise FileNotFoundError(f"config {rel_path} not found in {root}; give a path inside configs/")
    return path
