"""Command-line programs of the package, importable and testable; the files in ``tools/`` and ``demo/`` are thin
launchers of these (``python tools/X.py`` is ``python -m mask_adapter.apps.X``).

- ``demo``: segment images or a video with a vocabulary; ``web``: the same in the browser (Gradio).
- ``infer``: segment a whole dataset (``tools/infer.py``), resumable, sharded over processes, COCO result files;
  ``infer_benchmark``: its mode of ``tools/benchmark.py``.
- ``analyze_gt_masks``: the ground-truth-mask upper-bound study; ``make_custom_example``,
  ``prepare_synthetic_dataset``: small example datasets.
"""
