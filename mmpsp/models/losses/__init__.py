"""The loss path of PSPNet's heads: the upsample, loss and accuracy that a
decode head computes from its low-resolution logits, with mmseg's math."""
from .chunked_cross_entropy import (
                                    DEFAULT_MAX_CHUNK_BYTES,
                                    ChunkedUpsampleCE,
                                    chunked_upsample_cross_entropy,
                                    interpolation_matrix,
                                    supports,
)
from .head_loss import set_chunked_loss

__all__ = [
    'DEFAULT_MAX_CHUNK_BYTES', 'ChunkedUpsampleCE',
    'chunked_upsample_cross_entropy', 'interpolation_matrix',
    'set_chunked_loss', 'supports'
]
