"""The Python API of the package.

- ``segmenter``: ``Segmenter.from_pretrained(name_or_path)`` and its ``SegmentationResult`` (also exported as
  ``mask_adapter.Segmenter``).
- ``predictor``: ``VocabularyPredictor``, the model with a run-time vocabulary underneath; label maps and drawing.
- ``config``: the config of a model name / file with the demo options applied (``build_cfg``, ``setup_cfg``).
- ``images``: reading any common image file as 8-bit RGB; collecting input paths.
- ``vocabulary``: the vocabulary of a demo run (inline, file, dataset, default).
"""
