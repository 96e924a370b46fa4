"""U-Fuser: EMMA's fusion network F(i, v) (Zhao et al., CVPR 2024).

Two encoders (infrared, visible) of four Restormer-CNN blocks, a fusion block per
scale, a decoder with skip connections and a sigmoid output. Parameter names and
shapes equal those of the authors' ``Ufuser`` so their checkpoints load with
``strict=True`` (1,517,657 parameters).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UFuser", "RestormerCNNBlock", "UFUSER_CHANNELS"]

UFUSER_CHANNELS = (8, 16, 32, 32)


def _conv3(cin: int, cout: int, *, bias: bool = False, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias, padding_mode="reflect")


class LayerNorm2d(nn.Module):
    """Layer norm over the channel axis of an (N, C, H, W) tensor (Restormer's 'WithBias')."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ChannelAttention(nn.Module):
    """Multi-head transposed (channel) attention of Restormer, with a 1x1 then 3x3 qkv projection."""

    def __init__(self, dim: int, num_heads: int = 8) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv1 = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv2 = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, bias=False)
        self.proj = nn.Conv2d(dim, dim, 1, bias=False)

    def qkv(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (N, 3C, H, W) query/key/value projection of ``x``."""
        return self.qkv2(self.qkv1(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(x).reshape(n, 3, self.num_heads, c // self.num_heads, h * w).unbind(1)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).reshape(n, c, h, w))


class GatedFeedForward(nn.Module):
    """Restormer's gated depth-wise feed-forward network (expansion factor 1)."""

    def __init__(self, dim: int, expansion: float = 1.0) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(
            hidden * 2, hidden * 2, 3, padding=1, groups=hidden, bias=False, padding_mode="reflect"
        )
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: channel attention then gated feed-forward, both residual."""

    def __init__(self, dim: int, num_heads: int = 8) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.attn = ChannelAttention(dim, num_heads)
        self.norm2 = LayerNorm2d(dim)
        self.mlp = GatedFeedForward(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ResBlock(nn.Module):
    """conv3x3 - ReLU - conv3x3 with an identity skip."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv3(dim, dim, bias=True), nn.ReLU(), _conv3(dim, dim, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class LocalBranch(nn.Module):
    """Two residual conv blocks in sequence (the CNN branch of a Restormer-CNN block)."""

    def __init__(self, dim: int, num_blocks: int = 2) -> None:
        super().__init__()
        self.Extraction = nn.Sequential(*[ResBlock(dim) for _ in range(num_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.Extraction(x)


class RestormerCNNBlock(nn.Module):
    """Embed conv, then a transformer branch and a CNN branch in parallel, concatenated and mixed.

    Shape: (N, in_dim, H, W) -> (N, out_dim, H, W).
    """

    def __init__(self, in_dim: int, out_dim: int, num_heads: int = 8) -> None:
        super().__init__()
        self.embed = _conv3(in_dim, out_dim)
        self.GlobalFeature = TransformerBlock(out_dim, num_heads)
        self.LocalFeature = LocalBranch(out_dim)
        self.FFN = _conv3(out_dim * 2, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        return self.FFN(torch.cat((self.GlobalFeature(x), self.LocalFeature(x)), 1))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.ReLU())


class UFuser(nn.Module):
    """EMMA's U-Fuser F(i, v).

    Args:
        channels: feature widths of the four scales (the paper's are ``(8, 16, 32, 32)``).

    Shape:
        ``ir``, ``vi``: (N, 1, H, W) in [0, 1], H and W multiples of 8 and at least 16
        (the strided convolutions pad by reflection). Output: (N, 1, H, W) in (0, 1).

    Example:
        >>> net = UFuser().eval()
        >>> net(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)).shape
        torch.Size([1, 1, 32, 32])
    """

    multiple = 8

    def __init__(self, channels: tuple[int, int, int, int] = UFUSER_CHANNELS) -> None:
        super().__init__()
        c = channels
        self.channels = tuple(c)
        for p in ("V", "I"):
            setattr(self, f"{p}_en_1", RestormerCNNBlock(1, c[0]))
            setattr(self, f"{p}_en_2", RestormerCNNBlock(c[0], c[1]))
            setattr(self, f"{p}_en_3", RestormerCNNBlock(c[1], c[2]))
            setattr(self, f"{p}_en_4", RestormerCNNBlock(c[2], c[3]))
        for k in range(4):
            setattr(self, f"f_{k + 1}", RestormerCNNBlock(c[k] * 2, c[k]))
        for p in ("V", "I"):
            for k in range(3):
                setattr(self, f"{p}_down{k + 1}", _conv3(c[k], c[k], stride=2))
        self.up4 = _up(c[3], c[2])
        self.up3 = _up(c[2], c[1])
        self.up2 = _up(c[1], c[0])
        self.de_1 = RestormerCNNBlock(c[0] * 2, c[0])
        self.de_2 = RestormerCNNBlock(c[1] * 2, c[1])
        self.de_3 = RestormerCNNBlock(c[2] * 2, c[2])
        self.de_4 = RestormerCNNBlock(c[3], c[3])
        self.last = nn.Sequential(_conv3(c[0], 1, bias=True), nn.Sigmoid())

    def _encode(self, x: torch.Tensor, p: str) -> list[torch.Tensor]:
        feats = [getattr(self, f"{p}_en_1")(x)]
        for k in range(1, 4):
            down = getattr(self, f"{p}_down{k}")
            feats.append(getattr(self, f"{p}_en_{k + 1}")(down(feats[-1])))
        return feats

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        fi, fv = self._encode(ir, "I"), self._encode(vi, "V")
        f1, f2, f3, f4 = (getattr(self, f"f_{k + 1}")(torch.cat((a, b), 1)) for k, (a, b) in enumerate(zip(fi, fv)))
        out = self.up4(self.de_4(f4))
        out = self.up3(self.de_3(torch.cat((out, f3), 1)))
        out = self.up2(self.de_2(torch.cat((out, f2), 1)))
        return self.last(self.de_1(torch.cat((out, f1), 1)))
