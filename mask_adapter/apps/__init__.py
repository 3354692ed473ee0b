"""The command-line programs of the package; ``demo/demo.py`` and ``demo/app.py`` are thin files over them.

- ``mask_adapter.apps.demo``: segment images or a video with a vocabulary (``python -m mask_adapter.apps.demo``).
- ``mask_adapter.apps.web``: the same in the browser, served by Gradio (``python -m mask_adapter.apps.web``).
"""
