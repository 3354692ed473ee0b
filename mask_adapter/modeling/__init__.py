"""Model components. Importing this package registers backbones, heads, adapters and meta-architectures."""
from . import adapter, backbone, heads, pixel_decoder, text, transformer_decoder  # noqa: F401
from . import meta_arch  # noqa: F401
