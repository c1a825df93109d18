"""wgan: Wasserstein GANs (weight clipping and gradient penalty), unconditional and conditional."""

__version__ = "0.1.0"
