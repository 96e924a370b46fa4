"""EMMA's networks: the U-Fuser F and the pseudo-sensing U-Net A."""

from .sensing import SensingUNet
from .ufuser import UFuser

__all__ = ["UFuser", "SensingUNet"]
