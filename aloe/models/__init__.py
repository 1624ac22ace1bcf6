"""Flax linen modules of aloe, usable on their own in other projects."""

from aloe.models.ablations import HierarchicalReasoner
from aloe.models.ablations import MLPReasoner
from aloe.models.ablations import ResNetEntities
from aloe.models.aloe import ALOE
from aloe.models.aloe import ALOECater
from aloe.models.monet import MONet
from aloe.models.monet import MONetOutputs
from aloe.models.monet import monet_loss
from aloe.models.reasoners import VARIANTS
from aloe.models.reasoners import VariantReasoning
from aloe.models.transformer import RelativeMultiHeadAttention
from aloe.models.transformer import RelativeTransformer
from aloe.models.transformer import RelativeTransformerBlock
from aloe.models.unet import UNet

__all__ = ["ALOE", "ALOECater", "HierarchicalReasoner", "MLPReasoner", "MONet", "MONetOutputs",
           "RelativeMultiHeadAttention", "RelativeTransformer", "RelativeTransformerBlock",
           "ResNetEntities", "UNet", "VARIANTS", "VariantReasoning", "monet_loss"]
