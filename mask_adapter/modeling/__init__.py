"""Model components. Importing this package registers backbones, heads, adapters and meta-architectures."""

from . import (  # noqa: F401
    adapter,
    backbone,
    heads,
    meta_arch,  # noqa: F401
    pixel_decoder,
    text,
    transformer_decoder,
)
