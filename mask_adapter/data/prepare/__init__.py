"""Helpers shared by the ``datasets/prepare_*.py`` scripts, one concept per module:

- :mod:`.runner`: the command line (``standard_main``) and the conversion loop (``convert_label_maps``);
- :mod:`.label_io`: input checks, label-map I/O, file copies, progress and id lookup tables;
- :mod:`.voc`: VOC-style split lists, Pascal VOC 2012 and the Pascal-Context label maps;
- :mod:`.ade`: ADE20K-150 semantic labels, the instance mapping, instance masks and the per-split image walk;
- :mod:`.ade_json`: ADE20K-150 panoptic and instance ground truth as the official scripts write it;
- :mod:`.ade_full`: ADE20K-847 labels from the full ADE20K release;
- :mod:`.coco_stuff`: COCO-Stuff-171 labels from the stuffthingmaps;
- :mod:`.coco_panoptic`: COCO panoptic -> 133-class semantic labels;
- :mod:`.panoptic`: COCO panoptic colours, boxes and COCO JSON;
- :mod:`.cityscapes`: Cityscapes panoptic PNGs / JSON and train-id maps from the fine annotations;
- :mod:`.mapillary`: Mapillary Vistas v1.2 layout, panoptic JSON checks and labels from panoptic PNGs;
- :mod:`.commands`: one module per ``datasets/prepare_<name>.py`` script, holding its ``main(argv)``.

Every script is idempotent (existing outputs are skipped), shows tqdm progress, reads class definitions from the
package vocabularies and fails with one line naming the missing or unreadable input. A script's ``main`` is
``standard_main(__doc__, prepare_x, argv)`` around a ``prepare_x(root, ...)`` of this package that lists
(source, output) pairs for :func:`convert_label_maps`.

Shapes: label maps (H, W); RGB images and panoptic PNGs (H, W, 3) uint8.
"""

from .ade import (
    ADE_CATID_MAPPING,
    ADE_HINT,
    ade_catid_options,
    ade_image_entry,
    ade_instances,
    ade_semantic_labels,
    ade_split_images,
    prepare_ade20k_semantic,
    read_ade_catid_mapping,
)
from .ade_full import (
    ADE_FULL_FOLDERS,
    ADE_FULL_IGNORE,
    ADE_FULL_MAX_SIZE,
    ade_full_lut,
    ade_full_source,
    decode_ade_full_seg,
    prepare_ade20k_full,
    resize_ade_full,
)
from .ade_json import (
    SegmentColors,
    ade_instance_categories,
    ade_panoptic_categories,
    ade_panoptic_segments,
    prepare_ade20k_instances,
    prepare_ade20k_panoptic,
)
from .cityscapes import (
    CITYSCAPES_HINT,
    CITYSCAPES_NUM_LABEL_IDS,
    CITYSCAPES_SPLITS,
    cityscapes_categories,
    cityscapes_classes,
    cityscapes_panoptic,
    cityscapes_split_files,
    cityscapes_train_id_lut,
    label_ids_to_train_ids,
    prepare_cityscapes,
)
from .coco_panoptic import COCO_PANOPTIC_SPLITS, panoptic_to_semantic, prepare_coco_panoptic_semantic
from .coco_stuff import (
    COCO_STUFF_FOLDERS,
    COCO_STUFF_FULL_COUNT,
    COCO_STUFF_SPLITS,
    coco_stuff_lut,
    coco_stuff_source,
    prepare_coco_stuff,
)
from .label_io import (
    apply_lut,
    copy_file,
    id_lut,
    progress,
    read_label,
    read_rgb,
    require,
    vocab_id_to_index,
    write_label,
)
from .mapillary import (
    MAPILLARY_HINT,
    MAPILLARY_OPTIONS,
    MAPILLARY_PANOPTIC_JSON,
    MAPILLARY_SPLITS,
    MAPILLARY_UNLABELED,
    mapillary_render_label,
    mapillary_semantic,
    mapillary_v12_folder,
    place_folder,
    prepare_mapillary,
    read_mapillary_panoptic_json,
)
from .panoptic import ids_to_rgb, mask_bbox, rgb_to_ids, segment_table, write_coco_json, write_json
from .runner import (
    TRAIN_VAL_FOLDERS,
    Option,
    base_parser,
    convert_label_maps,
    default_root,
    folder_pairs,
    standard_main,
)
from .voc import (
    PASCAL_CONTEXT_HINT,
    PASCAL_CONTEXT_OPTIONS,
    PASCAL_CTX_459_IGNORE,
    VOC_HINT,
    check_ids,
    copy_voc_images,
    pascal_ctx59_lut,
    pascal_ctx459_lut,
    pascal_voc_luts,
    prepare_pascal_context,
    prepare_pascal_ctx59,
    prepare_pascal_ctx459,
    prepare_pascal_voc,
    read_pascal_context_label,
    read_split_list,
    voc_split_ids,
)

__all__ = [
    "default_root",
    "base_parser",
    "standard_main",
    "convert_label_maps",
    "folder_pairs",
    "require",
    "read_label",
    "read_rgb",
    "write_label",
    "copy_file",
    "progress",
    "id_lut",
    "apply_lut",
    "read_split_list",
    "read_pascal_context_label",
    "vocab_id_to_index",
    "check_ids",
    "TRAIN_VAL_FOLDERS",
    "voc_split_ids",
    "copy_voc_images",
    "prepare_pascal_context",
    "PASCAL_CONTEXT_HINT",
    "PASCAL_CONTEXT_OPTIONS",
    "ids_to_rgb",
    "rgb_to_ids",
    "mask_bbox",
    "segment_table",
    "write_json",
    "write_coco_json",
    "ADE_HINT",
    "ade_catid_options",
    "read_ade_catid_mapping",
    "ade_instances",
    "ade_image_entry",
    "ade_split_images",
    "SegmentColors",
    "ade_panoptic_categories",
    "ade_instance_categories",
    "ade_panoptic_segments",
    "prepare_ade20k_panoptic",
    "prepare_ade20k_instances",
    "ADE_FULL_FOLDERS",
    "ADE_FULL_IGNORE",
    "ADE_FULL_MAX_SIZE",
    "ade_full_lut",
    "ade_full_source",
    "decode_ade_full_seg",
    "resize_ade_full",
    "prepare_ade20k_full",
    "COCO_STUFF_FOLDERS",
    "COCO_STUFF_FULL_COUNT",
    "COCO_STUFF_SPLITS",
    "coco_stuff_lut",
    "coco_stuff_source",
    "prepare_coco_stuff",
    "Option",
    "CITYSCAPES_HINT",
    "CITYSCAPES_NUM_LABEL_IDS",
    "cityscapes_classes",
    "cityscapes_categories",
    "cityscapes_train_id_lut",
    "label_ids_to_train_ids",
    "cityscapes_panoptic",
    "cityscapes_split_files",
    "MAPILLARY_HINT",
    "MAPILLARY_UNLABELED",
    "MAPILLARY_PANOPTIC_JSON",
    "mapillary_v12_folder",
    "read_mapillary_panoptic_json",
    "place_folder",
    "mapillary_semantic",
    "MAPILLARY_SPLITS",
    "MAPILLARY_OPTIONS",
    "mapillary_render_label",
    "prepare_mapillary",
    "ADE_CATID_MAPPING",
    "ade_semantic_labels",
    "prepare_ade20k_semantic",
    "CITYSCAPES_SPLITS",
    "prepare_cityscapes",
    "COCO_PANOPTIC_SPLITS",
    "panoptic_to_semantic",
    "prepare_coco_panoptic_semantic",
    "PASCAL_CTX_459_IGNORE",
    "VOC_HINT",
    "pascal_ctx59_lut",
    "pascal_ctx459_lut",
    "pascal_voc_luts",
    "prepare_pascal_ctx59",
    "prepare_pascal_ctx459",
    "prepare_pascal_voc",
]
