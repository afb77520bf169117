"""Flax building blocks: small conv encoders/decoders, CNN classifiers, CIFAR-style ResNets."""

from jaxrobust.nn.conv import ConvDecoder, ConvEncoder, SmallCNN
from jaxrobust.nn.resnet import ResNet, resnet18

__all__ = ["ConvDecoder", "ConvEncoder", "ResNet", "SmallCNN", "resnet18"]
