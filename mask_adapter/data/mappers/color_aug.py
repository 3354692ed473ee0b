"""SSD-style photometric augmentation (``INPUT.COLOR_AUG_SSD``): brightness, contrast, saturation and hue jitter.

Acts on the image only; segmentation and coordinates are unchanged.
"""

import random

import cv2
import numpy as np
from detectron2.data.transforms import Augmentation
from fvcore.transforms.transform import Transform

__all__ = ["ColorAugSSDTransform", "ColorAugSSD"]


class ColorAugSSDTransform(Transform):
    """Random photometric distortion in the style of SSD, each part applied with probability 1/2.

    Args:
        img_format: channel order of the images, "RGB" or "BGR".
        brightness_delta: max absolute additive brightness change (0-255 scale).
        contrast_low, contrast_high: multiplicative contrast range.
        saturation_low, saturation_high: multiplicative saturation range.
        hue_delta: max absolute hue shift in OpenCV hue units (0-180).
    """

    def __init__(
        self,
        img_format: str,
        brightness_delta: int = 32,
        contrast_low: float = 0.5,
        contrast_high: float = 1.5,
        saturation_low: float = 0.5,
        saturation_high: float = 1.5,
        hue_delta: int = 18,
    ) -> None:
        super().__init__()
        if img_format not in ("RGB", "BGR"):
            raise ValueError(f"COLOR_AUG_SSD needs INPUT.FORMAT 'RGB' or 'BGR', got {img_format!r}")
        self._set_attributes(locals())

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> Transform:
        raise NotImplementedError("ColorAugSSDTransform is not invertible")

    def apply_image(self, img: np.ndarray, interp=None) -> np.ndarray:
        """(H, W, 3) uint8 image -> distorted (H, W, 3) uint8 image."""
        bgr = img[:, :, ::-1] if self.img_format == "RGB" else img
        out = bgr.astype(np.float32)
        if random.randrange(2):
            out += random.uniform(-self.brightness_delta, self.brightness_delta)
        contrast_first = random.randrange(2)
        if contrast_first and random.randrange(2):
            out *= random.uniform(self.contrast_low, self.contrast_high)
        out = np.clip(out, 0, 255).astype(np.uint8)
        hsv = cv2.cvtColor(out, cv2.COLOR_BGR2HSV).astype(np.int32)
        if random.randrange(2):
            hsv[:, :, 1] = np.clip(hsv[:, :, 1] * random.uniform(self.saturation_low, self.saturation_high), 0, 255)
        if random.randrange(2):
            hsv[:, :, 0] = (hsv[:, :, 0] + random.randint(-self.hue_delta, self.hue_delta)) % 180
        out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
        if not contrast_first and random.randrange(2):
            out = np.clip(
                out.astype(np.float32) * random.uniform(self.contrast_low, self.contrast_high),
                0,
                255,
            )
            out = out.astype(np.uint8)
        return np.ascontiguousarray(out[:, :, ::-1] if self.img_format == "RGB" else out)


class ColorAugSSD(Augmentation):
    """Augmentation wrapper of :class:`ColorAugSSDTransform` (its randomness is drawn when applied)."""

    def __init__(self, img_format: str) -> None:
        super().__init__()
        self.transform = ColorAugSSDTransform(img_format=img_format)

    def get_transform(self, image: np.ndarray) -> Transform:
        return self.transform
