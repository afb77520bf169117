"""Flax building blocks: small conv encoders/decoders, VAE networks, CNN classifiers, ResNets,
Lipschitz MLPs."""

from jaxrobust.nn.conv import BasicCNN, ConvDecoder, ConvEncoder, SmallCNN
from jaxrobust.nn.conv_ops import conv_general_dilated
from jaxrobust.nn.layers import Conv, ConvTranspose, max_pool_2x2
from jaxrobust.nn.lipschitz import LipschitzMLP, group_sort, project_rows_l1, rescale_rows_l1
from jaxrobust.nn.precision import COMPUTE_DTYPES, as_float32, compute_dtype
from jaxrobust.nn.resnet import ResNet, resnet18, resnet_8n2
from jaxrobust.nn.vae_networks import (
    VAE_NETWORKS,
    Ch3GrayDecoder,
    Ch3GrayEncoder,
    Ch3RGBDecoder,
    Ch3RGBEncoder,
    DCGANDecoder,
    DCGANEncoder,
    MLPDecoder,
    MLPEncoder,
    make_vae_networks,
)

__all__ = [
    "COMPUTE_DTYPES",
    "VAE_NETWORKS",
    "Ch3GrayDecoder",
    "Ch3GrayEncoder",
    "Ch3RGBDecoder",
    "Ch3RGBEncoder",
    "Conv",
    "ConvDecoder",
    "ConvTranspose",
    "ConvEncoder",
    "DCGANDecoder",
    "DCGANEncoder",
    "LipschitzMLP",
    "MLPDecoder",
    "MLPEncoder",
    "ResNet",
    "BasicCNN",
    "SmallCNN",
    "as_float32",
    "compute_dtype",
    "group_sort",
    "project_rows_l1",
    "rescale_rows_l1",
    "resnet18",
    "resnet_8n2",
    "conv_general_dilated",
    "make_vae_networks",
    "max_pool_2x2",
]
