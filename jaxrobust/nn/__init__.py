"""Flax building blocks: small conv encoders/decoders, CNN classifiers, CIFAR-style ResNets."""

from jaxrobust.nn.conv import ConvDecoder, ConvEncoder, SmallCNN
from jaxrobust.nn.conv_ops import conv_general_dilated
from jaxrobust.nn.layers import Conv, ConvTranspose, max_pool_2x2
from jaxrobust.nn.resnet import ResNet, resnet18

__all__ = [
    "Conv",
    "ConvDecoder",
    "ConvTranspose",
    "ConvEncoder",
    "ResNet",
    "SmallCNN",
    "resnet18",
    "conv_general_dilated",
    "max_pool_2x2",
]
