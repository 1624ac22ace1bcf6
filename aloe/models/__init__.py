"""Flax linen modules of aloe, usable on their own in other projects."""

from aloe.models.ablations import HierarchicalReasoner
from aloe.models.ablations import MLPReasoner
from aloe.models.aloe import ALOE
from aloe.models.aloe import ALOECater
from aloe.models.entities import LatentEntities
from aloe.models.entities import ResNetEntities
from aloe.models.entities import ResNetHyperpixels
from aloe.models.factory import build_aloe
from aloe.models.factory import build_aloe_cater
from aloe.models.monet import MONet
from aloe.models.monet import MONetOutputs
from aloe.models.monet import monet_loss
from aloe.models.reasoners import HierarchicalTransformerReasoner
from aloe.models.reasoners import MLPTokenReasoner
from aloe.models.reasoners import RelativeTransformerReasoner
from aloe.models.transformer import RelativeMultiHeadAttention
from aloe.models.transformer import RelativeTransformer
from aloe.models.transformer import RelativeTransformerBlock
from aloe.models.unet import UNet

__all__ = ["ALOE", "ALOECater", "HierarchicalReasoner", "HierarchicalTransformerReasoner",
           "LatentEntities", "MLPReasoner", "MLPTokenReasoner", "MONet", "MONetOutputs",
           "RelativeMultiHeadAttention", "RelativeTransformer", "RelativeTransformerBlock",
           "RelativeTransformerReasoner", "ResNetEntities", "ResNetHyperpixels", "UNet",
           "build_aloe", "build_aloe_cater", "monet_loss"]
