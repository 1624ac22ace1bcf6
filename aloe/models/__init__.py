"""Flax linen modules of aloe."""

from aloe.models.aloe import ALOE
from aloe.models.transformer import RelativeMultiHeadAttention
from aloe.models.transformer import RelativeTransformer
from aloe.models.transformer import RelativeTransformerBlock

__all__ = ["ALOE", "RelativeMultiHeadAttention", "RelativeTransformer",
           "RelativeTransformerBlock"]
