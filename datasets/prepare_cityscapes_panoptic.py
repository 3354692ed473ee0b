#!/usr/bin/env python
"""Cityscapes panoptic annotations (cityscapesScripts format) and train-id label maps from the fine annotations.

Input:  <root>/cityscapes/leftImg8bit/{train,val}/<city>/*_leftImg8bit.png
        <root>/cityscapes/gtFine/{train,val}/<city>/*_gtFine_{instanceIds,labelIds}.png
Output: <root>/cityscapes/gtFine/{train,val}/<city>/*_gtFine_labelTrainIds.png  (0..18, 255 = ignore)
        <root>/cityscapes/gtFine/cityscapes_panoptic_{train,val}/*_gtFine_panoptic.png and
        <root>/cityscapes/gtFine/cityscapes_panoptic_{train,val}.json (category ids = Cityscapes label ids),
        as cityscapesScripts' createTrainIdLabelImgs and createPanopticImgs write them (cityscapesscripts is not
        needed). A split whose JSON and files all exist is skipped.
"""

import os
import sys

from mask_adapter.data.prepare import (
    cityscapes_categories,
    cityscapes_classes,
    cityscapes_panoptic,
    cityscapes_split_files,
    convert_label_maps,
    label_ids_to_train_ids,
    progress,
    read_label,
    standard_main,
    write_coco_json,
    write_label,
)

SPLITS = ("train", "val")


def prepare(root: str) -> int:
    """Write the train-id maps and panoptic PNGs + JSON of both splits; returns the number of files written."""
    cityscapes = os.path.join(root, "cityscapes")
    things = {c.dataset_id: c.isthing for c in cityscapes_classes()}
    written = 0
    for split in SPLITS:
        files = list(cityscapes_split_files(cityscapes, split))
        json_path = os.path.join(cityscapes, "gtFine", f"cityscapes_panoptic_{split}.json")
        pan_dir = os.path.join(cityscapes, "gtFine", f"cityscapes_panoptic_{split}")
        train_ids = [(lab, lab[: -len("labelIds.png")] + "labelTrainIds.png") for _, _, _, lab in files]
        written += convert_label_maps(
            train_ids,
            lambda path: label_ids_to_train_ids(read_label(path), path),
            f"Cityscapes train ids {split}",
        )
        pan_paths = [os.path.join(pan_dir, f"{stem}_gtFine_panoptic.png") for stem, _, _, _ in files]
        if os.path.exists(json_path) and all(os.path.exists(p) for p in pan_paths):
            continue
        images, annotations = [], []
        for (stem, image, ins_path, _), out in progress(
            list(zip(files, pan_paths, strict=True)), f"Cityscapes panoptic {split}"
        ):
            rgb, segments = cityscapes_panoptic(read_label(ins_path), things, ins_path)
            images.append(
                {
                    "id": stem,
                    "file_name": os.path.basename(image),
                    "height": int(rgb.shape[0]),
                    "width": int(rgb.shape[1]),
                }
            )
            annotations.append({"image_id": stem, "file_name": os.path.basename(out), "segments_info": segments})
            if not os.path.exists(out):
                write_label(out, rgb)
                written += 1
        # Written last, through a temporary name: an interrupted run never leaves a JSON that looks complete.
        write_coco_json(json_path + ".tmp", images, annotations, cityscapes_categories())
        os.replace(json_path + ".tmp", json_path)
        written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
