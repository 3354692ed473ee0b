from .clip import CLIPBackbone, build_clip_model
from .tiny_clip import TINY_CLIP_MODEL_NAME
