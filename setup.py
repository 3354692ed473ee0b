from setuptools import find_packages, setup

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
    ],
)
