"""Flax linen modules of aloe."""

from aloe.models.aloe import ALOE
from aloe.models.aloe import ALOECater
from aloe.models.transformer import RelativeMultiHeadAttention
from aloe.models.transformer import RelativeTransformer
from aloe.models.transformer import RelativeTransformerBlock

__all__ = ["ALOE", "ALOECater", "RelativeMultiHeadAttention", "RelativeTransformer",
           "RelativeTransformerBlock"]
