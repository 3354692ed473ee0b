"""Mask-Adapter in the browser: upload an image, type a vocabulary, see the segmentation, download the label map.

Run (from any directory; serves on 127.0.0.1 only, offline, no share link; ``python -m mask_adapter.apps.web`` is
the same program):
    python demo/app.py                                   # tiny RANDOM model, http://127.0.0.1:7860
    python demo/app.py --weights fcclip-l-ma --sam-checkpoint sam_vit_b_01ec64.pth --port 8080

The page offers the CLI demo's choices: the vocabulary in the same inline syntax ("cat,kitten;dog;traffic light":
";" or "|" between classes, "," between synonyms, the first name is the label; prefilled with the CLI's default
vocabulary), the task (semantic / panoptic / instance) and the mask source (``mask_adapter.api.config.MASK_SOURCES``). Without
--sam-checkpoint, the tiny random model uses a tiny random SAM; a real model then offers SAM masks only with
--sam-checkpoint.

Python API (what the page calls; usable without a browser or Gradio):
    app = DemoApp(weights=None)                          # model built once; one predictor per mask source
    result = app.segment(image_path, vocabulary, task, mask_source)
    result.overlay         (H, W, 3) uint8 RGB drawing of the task output over the image (H×W: the input's size, or
                           the scaled size when its longer side exceeds --max-size, default 2048: an 8000x6000
                           photo is processed and returned at 2048x1536, as demo.py does; JPEGs are decoded at
                           reduced scale, so memory stays bounded)
    result.legend          HTML table of the classes present: colour, id, name, share of the pixels (and a note
                           when the image was scaled)
    result.label_map_path  PNG of class ids per pixel (uint8; uint16 above 255 classes; void = 255 / 65535)
    result.classes_path    JSON next to it: id -> class, synonyms, void value (the CLI's ``--save-label-map`` files)
Bad input (no image, a file that is not an image, an empty, truncated or corrupt image file, an empty or malformed
vocabulary, an unknown task or mask source, SAM masks without SAM weights) raises ``AppInputError`` (a
``ValueError``) with a one-line message naming the problem and the fix; the page shows it as an error notice and
keeps running.
"""

import argparse
import contextlib
import hashlib
import html
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mask_adapter.api.config import MASK_SOURCES, is_random_tiny_model, setup_cfg
from mask_adapter.api.images import DEFAULT_MAX_SIDE, ImageReadError, ImageTooLargeError, original_size
from mask_adapter.api.predictor import TASKS, VocabularyPredictor, void_label
from mask_adapter.api.vocabulary import default_vocabulary
from mask_adapter.apps.demo import get_parser as cli_parser
from mask_adapter.apps.demo import load_input, save_label_map
from mask_adapter.checkpoint.hub import RELEASED_MODELS, resolve_weights
from mask_adapter.utils.cli import error_message, run_cli

__all__ = ["AppInputError", "DemoApp", "SegmentResult", "build_ui", "cli", "get_parser", "main"]

logger = logging.getLogger("mask_adapter.demo")

_KEEP_RESULTS = 16  # result folders kept on disk (older ones are deleted; Gradio serves its own copies)
_LEGEND_ROWS = 40


class AppInputError(ValueError):
    """Bad input to the app (or an option it cannot offer): a one-line message with the problem and the fix."""


@dataclass(frozen=True)
class SegmentResult:
    """What one request returns (see the module docstring)."""

    overlay: np.ndarray
    legend: str
    label_map_path: str
    classes_path: str


def _one_line(e: BaseException) -> str:
    """The CLI's ``error_message`` of ``e`` (KeyError quotes dropped, type name if empty) on one line for the page."""
    return " ".join(error_message(e).split())


def _image_format(path: str) -> str | None:
    """The image format PIL recognises from the file's header ("JPEG", "PNG" ...), or None."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.format
    except Exception:  # not recognised at all
        return None


class DemoApp:
    """Request handling of the browser demo, independent of Gradio.

    Args:
        config_file: model config (default as in demo.py: the config of a short --weights name, else the tiny one).
        weights: checkpoint file, URL or released short name (``mask_adapter.checkpoint.RELEASED_MODELS``; default: MODEL.WEIGHTS of the config).
        sam_checkpoint: SAM weights for the "sam" mask source (MODEL.SAM.CHECKPOINT).
        sam2_checkpoint, sam2_config: SAM2 weights and their sam2 package config for the "sam2" mask source
            (MODEL.SAM2.CHECKPOINT / MODEL.SAM2.CONFIG).
        opts: config overrides KEY VALUE ...
        confidence_threshold: minimum score of a drawn instance.
        trust_pickle: allow checkpoints with pickled objects.
        output_dir: where label maps are written (default: a new temporary folder, removed with the app).
        max_side: images whose longer side exceeds it are scaled down to it before inference (demo.py's
            --max-size); the outputs have the scaled size.

    Raises:
        ValueError / FileNotFoundError: a bad config, weights or SAM checkpoint (one-line messages).
    """

    def __init__(
        self,
        *,
        config_file: str | None = None,
        weights: str | None = None,
        sam_checkpoint: str | None = None,
        sam2_checkpoint: str | None = None,
        sam2_config: str | None = None,
        opts: Sequence[str] = (),
        confidence_threshold: float = 0.5,
        trust_pickle: bool = False,
        output_dir: str | None = None,
        max_side: int = DEFAULT_MAX_SIDE,
    ) -> None:
        if max_side < 32:
            raise ValueError(
                f"--max-size {max_side} is too small; give at least 32 pixels (default {DEFAULT_MAX_SIDE})"
            )
        self.max_side = max_side
        argv: list[str] = ["--task", *TASKS]
        if config_file is not None:
            argv += ["--config-file", config_file]
        if weights is not None:
            argv += ["--weights", weights]
        # Per mask source, the demo.py options that select its weights (added only when that source is built).
        self._source_argv: dict[str, list[str]] = {"sam": [], "sam2": []}
        for source, flag, path in (
            ("sam", "--sam-checkpoint", sam_checkpoint),
            ("sam2", "--sam2-checkpoint", sam2_checkpoint),
        ):
            if path is not None:
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"{source.upper()} checkpoint not found: {path}; give an existing file")
                self._source_argv[source] += [flag, path]
        if sam2_config is not None:
            self._source_argv["sam2"] += ["--sam2-config", sam2_config]
        self._cli_argv = argv + (["--opts", *opts] if opts else [])
        cfg = setup_cfg(cli_parser().parse_args(self._cli_argv))
        self.weights = resolve_weights(cfg.MODEL.WEIGHTS)  # fail (or download) once, before serving
        self.random_model = is_random_tiny_model(cfg) and not self.weights
        self.sam_checkpoint = sam_checkpoint
        self.confidence_threshold = confidence_threshold
        self.default_names, self.default_things = default_vocabulary(cfg)
        self.default_vocabulary = ";".join(self.default_names)
        self._tmp = None if output_dir else tempfile.TemporaryDirectory(prefix="mask_adapter_app_")
        self.output_dir = Path(output_dir) if output_dir else Path(self._tmp.name)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        # Gradio's uploads and cached files (build_ui points GRADIO_TEMP_DIR here): removed by close()
        self.upload_dir = self.output_dir / "uploads"
        self._last_upload: tuple[str, np.ndarray, tuple[int, int] | None] | None = None
        self.trust_pickle = trust_pickle
        self._predictors: dict[str, VocabularyPredictor] = {}
        self._last: tuple[tuple[Any, ...], dict[str, Any]] | None = None  # (request key, model outputs)
        self._results: list[Path] = []
        self._count = 0
        self._lock = threading.Lock()
        self._predictors["generator"] = self._build("generator")  # the model is built once, before serving

    # ------------------------------------------------------------------------------------------------ building
    def _build(self, mask_source: str) -> VocabularyPredictor:
        """A predictor with every task enabled, as demo.py's config for ``--masks mask_source`` gives it."""
        import torch

        argv = ["--masks", mask_source, *self._source_argv.get(mask_source, []), *self._cli_argv]
        cfg = setup_cfg(cli_parser().parse_args(argv))
        cfg.defrost()
        cfg.MODEL.WEIGHTS = self.weights  # resolved once
        cfg.freeze()
        generator = None
        if mask_source == "sam" and not self.sam_checkpoint:
            if not self.random_model:
                raise AppInputError(
                    "SAM masks need SAM weights: restart the app with --sam-checkpoint sam_vit_b_01ec64.pth "
                    "(or choose the generator masks)"
                )
            from mask_adapter.modeling.tiny_sam import tiny_sam_mask_generator

            generator = tiny_sam_mask_generator(seed=0)
        torch.manual_seed(0)  # reproducible random weights of the tiny model
        return VocabularyPredictor(cfg, mask_generator=generator, allow_pickle=self.trust_pickle)

    def _predictor(self, mask_source: str) -> VocabularyPredictor:
        if mask_source not in self._predictors:
            try:
                self._predictors[mask_source] = self._build(mask_source)
            except AppInputError:
                raise
            except (ValueError, FileNotFoundError, ImportError) as e:
                raise AppInputError(f"cannot use {mask_source} masks: {_one_line(e)}") from None
        return self._predictors[mask_source]

    # ------------------------------------------------------------------------------------------------ checks
    def _read_image(self, image_path: str | None) -> tuple[np.ndarray, tuple[int, int] | None]:
        """The image as (H, W, 3) uint8 RGB, scaled to ``max_side``, and its (width, height) in the file if scaled.

        An upload (a file under ``upload_dir``) is deleted once read; the last one stays in memory, so pressing
        Segment again on it (another vocabulary, task ...) works without the file."""
        if not image_path:
            raise AppInputError("no image: upload an image (JPEG, PNG, BMP, TIFF, WebP) first")
        last = self._last_upload
        if last is not None and last[0] == image_path and not os.path.exists(image_path):
            return last[1], last[2]
        try:
            image, scaled_from = self._decode(image_path)
        finally:
            self._delete_upload(image_path)
        if self._is_upload(image_path):
            self._last_upload = (image_path, image, scaled_from)
        return image, scaled_from

    def _is_upload(self, path: str) -> bool:
        root = os.path.realpath(self.upload_dir) + os.sep
        return os.path.realpath(path).startswith(root)

    def _delete_upload(self, path: str) -> None:
        """Remove an uploaded file and the folders Gradio made for it (nothing outside ``upload_dir``)."""
        if not self._is_upload(path):
            return
        with contextlib.suppress(OSError):
            os.remove(path)
        folder = Path(path).parent
        while self._is_upload(str(folder)) and folder != self.upload_dir:
            try:
                folder.rmdir()  # only empty folders
            except OSError:
                break
            folder = folder.parent

    def _decode(self, image_path: str) -> tuple[np.ndarray, tuple[int, int] | None]:
        name = Path(image_path).name
        if not os.path.isfile(image_path):
            raise AppInputError(f"image {name} not found on the server; upload it again")
        if os.path.getsize(image_path) == 0:
            raise AppInputError(f"{name} is empty (0 bytes); upload the image file again")
        try:
            image = load_input(image_path, self.max_side)
        except ImageTooLargeError as e:
            side = int(e.limit**0.5)
            raise AppInputError(
                f"{name} is too large: {e.pixels:,} pixels, more than the limit of {e.limit:,} pixels (about "
                f"{side:,} x {side:,}) that guards against decompression bombs; upload a smaller image"
            ) from None
        except ImageReadError:
            kind = _image_format(image_path)
            if kind:
                raise AppInputError(
                    f"{name} is a damaged {kind} file (truncated or corrupt); upload the complete file again"
                ) from None
            raise AppInputError(
                f"{name} is not an image this demo can read; upload a JPEG, PNG, BMP, TIFF or WebP file"
            ) from None
        if max(image.shape[:2]) == self.max_side:
            size = original_size(image_path)
            if max(size) > self.max_side:
                return image, size
        return image, None

    def _vocabulary(self, text: str | None) -> tuple[list[str], list[int]]:
        from mask_adapter.data.vocabulary import parse_inline_vocabulary

        try:
            names = parse_inline_vocabulary(text or "")
        except ValueError as e:
            raise AppInputError(_one_line(e)) from None
        if names == self.default_names:  # the prefilled default keeps its thing/stuff split
            return names, list(self.default_things)
        return names, list(range(len(names)))

    # ------------------------------------------------------------------------------------------------ request
    def segment(self, image_path: str | None, vocabulary: str, task: str, mask_source: str) -> SegmentResult:
        """Segment one image (see the module docstring).

        Args:
            image_path: the uploaded file.
            vocabulary: inline vocabulary ("cat,kitten;dog").
            task: one of ``TASKS``.
            mask_source: one of ``MASK_SOURCES``.

        Returns:
            The overlay, legend and label-map files.

        Raises:
            AppInputError: bad input, with a one-line message.
        """
        if task not in TASKS:
            raise AppInputError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        if mask_source not in MASK_SOURCES:
            raise AppInputError(f"unknown mask source {mask_source!r}; choose one of {', '.join(MASK_SOURCES)}")
        image, scaled_from = self._read_image(image_path)
        names, things = self._vocabulary(vocabulary)
        with self._lock:
            predictor = self._predictor(mask_source)
            key = (hashlib.sha1(image.tobytes()).hexdigest(), image.shape, mask_source, tuple(names), tuple(things))
            if self._last is not None and self._last[0] == key:
                outputs = self._last[1]  # same image, vocabulary and masks: only the drawing changes
            else:
                if tuple(names) != predictor.class_names:
                    predictor.set_vocabulary(names, things)
                self._last = None  # free the previous (C, H, W) scores first
                outputs = predictor(image)
                self._last = (key, outputs)
            overlay = predictor.visualize(image, outputs, task, self.confidence_threshold)
            labels = predictor.label_map(outputs, task, self.confidence_threshold)
            png, classes = self._write_label_map(labels, names, task, Path(image_path).stem)
            legend = self._legend(labels, predictor, task, mask_source)
        if scaled_from is not None:
            h, w = image.shape[:2]
            note = (
                f"<p>The image ({scaled_from[0]}x{scaled_from[1]}) was scaled to {w}x{h} (longer side "
                f"{self.max_side}); the overlay and label map have that size.</p>"
            )
            legend = legend.replace('<div class="legend">', f'<div class="legend">{note}', 1)
        return SegmentResult(overlay=overlay, legend=legend, label_map_path=str(png), classes_path=str(classes))

    def activation_maps(
        self, image_path: str | None, vocabulary: str, mask_source: str, max_segments: int = 4
    ) -> tuple[np.ndarray, str]:
        """The adapter's activation maps of the image's most confident segments (the "Activation maps" panel).

        Args:
            image_path, vocabulary, mask_source: as :meth:`segment`.
            max_segments: segments shown.

        Returns:
            (figure (rows, cols, 3) uint8 RGB: per segment its binary proposal mask, the mean and the K normalised
            activation maps over the image; HTML table: class by mask pooling vs by the adapter per segment).

        Raises:
            AppInputError: bad input, or a model without an adapter, with a one-line message.
        """
        from mask_adapter.analysis.activation_maps import compute_activation_maps, render_activation_figure

        if mask_source not in MASK_SOURCES:
            raise AppInputError(f"unknown mask source {mask_source!r}; choose one of {', '.join(MASK_SOURCES)}")
        image, _ = self._read_image(image_path)
        names, things = self._vocabulary(vocabulary)
        with self._lock:
            predictor = self._predictor(mask_source)
            if tuple(names) != predictor.class_names:
                predictor.set_vocabulary(names, things)
            resize = predictor.aug.get_transform(image).apply_image if predictor.cfg.INPUT.MIN_SIZE_TEST > 0 else None
            try:
                result = compute_activation_maps(predictor.model, image, resize=resize, max_segments=max_segments)
            except ValueError as e:
                raise AppInputError(_one_line(e)) from None
        rows = "".join(
            f"<tr><td>{i}</td><td>{r['area']}</td><td>{html.escape(r['mask_pooling']['class'])} "
            f"({r['mask_pooling']['score']:.2f})</td><td>{html.escape(r['adapter']['class'])} "
            f"({r['adapter']['score']:.2f})</td><td>{html.escape(r['final']['class'])}</td></tr>"
            for i, r in enumerate(result.summary())
        )
        table = (
            f'<div class="activation-maps"><p>{len(result.segments)} segments, {result.num_maps} normalised '
            "activation maps each (every map sums to 1 over the CLIP grid)</p><table><tr><th>segment</th>"
            "<th>pixels</th><th>mask pooling</th><th>adapter</th><th>model output</th></tr>" + rows + "</table></div>"
        )
        return render_activation_figure(result, tile_height=80), table

    def _write_label_map(self, labels: np.ndarray, names: Sequence[str], task: str, stem: str) -> tuple[Path, Path]:
        """Write PNG + JSON into a staging folder, then move the folder into place in one rename."""
        self._count += 1
        stage = Path(tempfile.mkdtemp(prefix=".stage-", dir=self.output_dir))
        png_name = f"{stem}_{task}_labels.png"
        save_label_map(labels, names, task, stage / png_name)
        final = self.output_dir / f"result-{os.getpid()}-{self._count:06d}"
        os.replace(stage, final)
        self._results.append(final)
        while len(self._results) > _KEEP_RESULTS:
            shutil.rmtree(self._results.pop(0), ignore_errors=True)
        return final / png_name, (final / png_name).with_suffix(".json")

    def _legend(self, labels: np.ndarray, predictor: VocabularyPredictor, task: str, mask_source: str) -> str:
        meta = predictor.metadata
        void = void_label(len(predictor.class_names))
        ids, counts = np.unique(labels, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        total = float(labels.size)
        rows = []
        for k in order[:_LEGEND_ROWS]:
            i, share = int(ids[k]), 100.0 * counts[k] / total
            if i == void:
                rows.append(f"<tr><td></td><td>&ndash;</td><td><i>unlabeled</i></td><td>{share:.1f}%</td></tr>")
                continue
            r, g, b = meta.stuff_colors[i]
            swatch = f'<span style="display:inline-block;width:1.2em;height:1.2em;background:rgb({r},{g},{b})"></span>'
            name = html.escape(meta.stuff_classes[i])
            rows.append(f"<tr><td>{swatch}</td><td>{i}</td><td>{name}</td><td>{share:.1f}%</td></tr>")
        more = len(ids) - len(rows)
        note = f"<p>... and {more} more classes</p>" if more > 0 else ""
        head = (
            f"<p><b>{task}</b> with {html.escape(mask_source)} masks: {len(ids) - int(void in ids)} of "
            f"{len(predictor.class_names)} classes present</p>"
        )
        table = "<table><tr><th></th><th>id</th><th>class</th><th>pixels</th></tr>" + "".join(rows) + "</table>"
        return f'<div class="legend">{head}{table}{note}</div>'

    def close(self) -> None:
        """Remove the uploads, and the temporary output folder (when the app made it)."""
        shutil.rmtree(self.upload_dir, ignore_errors=True)
        if self._tmp is not None:
            self._tmp.cleanup()


# ---------------------------------------------------------------------------------------------------- page
def build_ui(app: DemoApp) -> Any:
    """The Gradio page around ``app`` (a ``gr.Blocks``; launch it with ``launch_kwargs()``)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # uploads and Gradio's cached outputs go to the app's folder, removed when the app stops (not into $TMPDIR/gradio)
    os.environ["GRADIO_TEMP_DIR"] = str(app.upload_dir)
    import gradio as gr

    def run(image: str | None, vocabulary: str, task: str, masks: str):
        try:
            result = app.segment(image, vocabulary, task, masks)
        except AppInputError as e:
            raise gr.Error(html.escape(str(e)), duration=None, print_exception=False) from None
        except Exception as e:  # keep serving; the traceback goes to the server log
            logger.exception("request failed")
            message = html.escape(f"internal error: {_one_line(e)}; see the server log")
            raise gr.Error(message, duration=None, print_exception=False) from e
        return result.overlay, result.legend, [result.label_map_path, result.classes_path]

    def show_maps(image: str | None, vocabulary: str, masks: str):
        try:
            return app.activation_maps(image, vocabulary, masks)
        except AppInputError as e:
            raise gr.Error(html.escape(str(e)), duration=None, print_exception=False) from None
        except Exception as e:
            logger.exception("request failed")
            message = html.escape(f"internal error: {_one_line(e)}; see the server log")
            raise gr.Error(message, duration=None, print_exception=False) from e

    note = (
        "**Tiny RANDOM model**: the segmentation is meaningless; restart with `--weights fcclip-l-ma` for real results."
        if app.random_model
        else f"Weights: `{html.escape(os.path.basename(app.weights))}`"
    )
    with gr.Blocks(title="Mask-Adapter", analytics_enabled=False) as page:
        gr.Markdown(f"## Mask-Adapter: open-vocabulary segmentation\n{note}")
        with gr.Row():
            with gr.Column():
                image = gr.File(label="Image", type="filepath", elem_id="image-upload")
                vocabulary = gr.Textbox(
                    value=app.default_vocabulary,
                    label="Vocabulary",
                    info="';' between classes, ',' between synonyms (the first is the label): cat,kitten;dog;sky",
                    lines=3,
                    max_lines=8,
                    elem_id="vocabulary",
                )
                task = gr.Radio(list(TASKS), value=TASKS[0], label="Task", elem_id="task")
                masks = gr.Radio(
                    [(k, k) for k in MASK_SOURCES],
                    value="generator",
                    label="Masks",
                    info="; ".join(f"{k}: {v}" for k, v in MASK_SOURCES.items()),
                    elem_id="masks",
                )
                button = gr.Button("Segment", variant="primary", elem_id="segment")
            with gr.Column():
                overlay = gr.Image(
                    label="Segmentation", type="numpy", format="png", interactive=False, elem_id="overlay"
                )
                legend = gr.HTML(elem_id="legend")
                files = gr.File(
                    label="Label map (PNG of class ids) and classes (JSON)",
                    file_count="multiple",
                    interactive=False,
                    elem_id="label-map",
                )
        with gr.Accordion("Activation maps: mask pooling vs the adapter", open=False, elem_id="activation-panel"):
            gr.Markdown(
                "Per segment: its binary proposal mask, the mean of the adapter's normalised semantic activation "
                "maps and the maps themselves, over the image; the table gives the class from plain mask pooling "
                "of the CLIP feature and from the adapter."
            )
            maps_button = gr.Button("Show activation maps", elem_id="show-maps")
            maps_figure = gr.Image(
                label="Activation maps", type="numpy", format="png", interactive=False, elem_id="maps-figure"
            )
            maps_table = gr.HTML(elem_id="maps-table")
        button.click(run, [image, vocabulary, task, masks], [overlay, legend, files])
        maps_button.click(show_maps, [image, vocabulary, masks], [maps_figure, maps_table])
    return page


def launch_kwargs(host: str, port: int) -> dict[str, Any]:
    """``Blocks.launch`` arguments: local, offline (system fonts), no share link, no server-side rendering."""
    import gradio as gr

    font = [gr.themes.Font("system-ui"), gr.themes.Font("sans-serif")]
    mono = [gr.themes.Font("ui-monospace"), gr.themes.Font("monospace")]
    return dict(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        max_file_size="50mb",
        quiet=True,
        theme=gr.themes.Default(font=font, font_mono=mono),
    )


# ---------------------------------------------------------------------------------------------------- command line
def get_parser() -> argparse.ArgumentParser:
    description, epilog = __doc__.split("\n\n", 1)
    p = argparse.ArgumentParser(
        description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config-file", default=None, metavar="FILE", help="model config (default: as demo.py)")
    p.add_argument(
        "--weights",
        default=None,
        help=f"checkpoint file, URL or short name ({', '.join(RELEASED_MODELS)}); default: the tiny random model",
    )
    p.add_argument("--sam-checkpoint", default=None, help="SAM weights for the 'sam' mask source")
    p.add_argument("--sam2-checkpoint", default=None, help="SAM2 weights for the 'sam2' mask source")
    p.add_argument(
        "--sam2-config", default=None, metavar="NAME", help="sam2 package config of --sam2-checkpoint (sam2.1_hiera_l)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--confidence-threshold", type=float, default=0.5, help="minimum instance score drawn")
    p.add_argument(
        "--max-size",
        type=int,
        default=DEFAULT_MAX_SIDE,
        help=f"scale down images whose longer side exceeds this (default {DEFAULT_MAX_SIDE}); outputs get the "
        "scaled size",
    )
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow checkpoints with pickled objects (runs code from the file: only files you trust)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ...")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Build the model, then serve the page until interrupted."""
    args = get_parser().parse_args(argv)
    if not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port} is not a port number; give 1-65535")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("--host %s: the demo is reachable from other machines", args.host)
    app = DemoApp(
        config_file=args.config_file,
        weights=args.weights,
        sam_checkpoint=args.sam_checkpoint,
        sam2_checkpoint=args.sam2_checkpoint,
        sam2_config=args.sam2_config,
        opts=args.opts,
        confidence_threshold=args.confidence_threshold,
        trust_pickle=args.trust_pickle,
        max_side=args.max_size,
    )
    if app.random_model:
        logger.warning("running the tiny RANDOM model: the segmentation is meaningless; pass --weights fcclip-l-ma")
    page = build_ui(app)
    kwargs = launch_kwargs(args.host, args.port)
    page.launch(**kwargs, prevent_thread_lock=True)
    logger.info("serving on http://%s:%d (Ctrl-C to stop)", args.host, args.port)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)  # `kill` cleans up like Ctrl-C
    try:
        page.block_thread()
    finally:
        signal.signal(signal.SIGTERM, previous)
        with contextlib.suppress(Exception):  # the server may already be closed by block_thread
            page.close()
        app.close()


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cli(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: console logging, and one "error: ..." line (exit code 1) on bad options unless --debug."""
    from detectron2.utils.logger import setup_logger

    setup_logger(name="mask_adapter")
    return run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(cli())
