"""Registering names another package already holds (e.g. the official fcclip package) warns instead of crashing."""

import subprocess
import sys
import textwrap

import pytest
from detectron2.utils.registry import Registry

from mask_adapter.utils.registry import register_once


def test_register_once_keeps_existing_entry_and_warns(caplog):
    reg = Registry("TEST_REGISTRY")

    class A:
        pass

    class B:
        pass

    B.__name__ = "A"
    assert register_once(reg, A) is A
    with caplog.at_level("WARNING"):
        register_once(reg, B)
    assert reg.get("A") is A
    assert "already holds 'A'" in caplog.text
    register_once(reg, A)  # the same object again: silent no-op
    register_once(reg, A, "Alias")
    assert reg.get("Alias") is A


@pytest.mark.slow  # subprocess
def test_import_next_to_a_package_that_registered_official_names(tmp_path):
    code = textwrap.dedent(
        """
        import logging
        logging.basicConfig(level=logging.WARNING)
        from detectron2.modeling import META_ARCH_REGISTRY, BACKBONE_REGISTRY

        @META_ARCH_REGISTRY.register()
        class FCCLIP: pass

        @BACKBONE_REGISTRY.register()
        class CLIP: pass

        import mask_adapter
        assert META_ARCH_REGISTRY.get("FCCLIP") is FCCLIP
        assert META_ARCH_REGISTRY.get("MAFT_Plus").__name__ == "MAFTPlus"
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")
    assert "already holds 'FCCLIP'" in proc.stderr and "already holds 'CLIP'" in proc.stderr


def test_official_base_yaml_names_fail_clearly_when_built():
    """Names only the official base YAMLs use load, but building them raises one clear line."""
    from detectron2.config import get_cfg
    from detectron2.modeling import META_ARCH_REGISTRY, SEM_SEG_HEADS_REGISTRY

    import mask_adapter  # noqa: F401

    for registry, name in ((META_ARCH_REGISTRY, "MaskFormer"), (SEM_SEG_HEADS_REGISTRY, "FCCLIPMASKHead")):
        try:
            registry.get(name)(get_cfg())
        except ValueError as e:
            msg = str(e)
        else:
            raise AssertionError(f"{name} built")
        assert "\n" not in msg and f"{name!r} is not supported" in msg
