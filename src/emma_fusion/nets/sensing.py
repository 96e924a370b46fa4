"""Pseudo-sensing module: EMMA's five-level U-Net A (fused image -> one modality).

Parameter names equal the authors' ``UNet5`` at every width; at ``width=64`` the shapes
are theirs too (39,397,761 parameters), so their ``Ai.pth`` / ``Av.pth`` load with
``strict=True``. Slimmer widths keep the names and scale every channel count.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SensingUNet"]


class ConvBlock(nn.Module):
    """(conv3x3 - BatchNorm - ReLU) x 2. Shape: (N, cin, H, W) -> (N, cout, H, W)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.ReLU())


class SensingUNet(nn.Module):
    """Five-level U-Net, 1 -> 1 channel, sigmoid output.

    Args:
        width: channels of the first level; level k has ``width * 2**k`` (paper: 64).

    Shape:
        (N, 1, H, W) in [0, 1] with H, W multiples of 16 -> (N, 1, H, W) in (0, 1).

    Example:
        >>> SensingUNet(width=8).eval()(torch.rand(2, 1, 32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """

    multiple = 16

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.width = width
        w = [width * 2**k for k in range(5)]
        self.down_sample = nn.MaxPool2d(2)
        self.down1 = ConvBlock(1, w[0])
        for k in range(1, 5):
            setattr(self, f"down{k + 1}", ConvBlock(w[k - 1], w[k]))
        for k in range(4, 0, -1):  # levels 5..2 upsample into 4..1
            setattr(self, f"up_sample{k + 1}", _up(w[k], w[k - 1]))
            setattr(self, f"up{k}", ConvBlock(w[k], w[k - 1]))
        self.last = nn.Sequential(nn.Conv2d(w[0], 1, 3, padding=1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.down1(x)]
        for k in range(2, 5):
            skips.append(getattr(self, f"down{k}")(self.down_sample(skips[-1])))
        out = self.down5(self.down_sample(skips[-1]))
        for k in range(4, 0, -1):
            out = getattr(self, f"up{k}")(torch.cat((getattr(self, f"up_sample{k + 1}")(out), skips[k - 1]), 1))
        return self.last(out)
