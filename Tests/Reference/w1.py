"""The W1 U-Net and loss in PyTorch, written independently of MedMAML from docs/WORKLOADS.md.

Used by the fixture generators in this folder and by bench/pytorch_w1.py. Parameter names
match MedMAML's (and so checkpoints move between the two unchanged).
"""
import math
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, groups=4):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.gn = nn.GroupNorm(groups, cout, eps=1e-5)

    def forward(self, x):
        return F.relu(self.gn(self.conv(x)))


class UNetW1(nn.Module):
    def __init__(self):
        super().__init__()
        self.e1a, self.e1b = Block(1, 16), Block(16, 16)
        self.e2a, self.e2b = Block(16, 32), Block(32, 32)
        self.ba, self.bb = Block(32, 64), Block(64, 64)
        self.d2a, self.d2b = Block(96, 32), Block(32, 32)
        self.d1a, self.d1b = Block(48, 16), Block(16, 16)
        self.head = nn.Conv2d(16, 1, 1)

    def forward(self, x):
        e1 = self.e1b(self.e1a(x))
        e2 = self.e2b(self.e2a(F.max_pool2d(e1, 2)))
        b = self.bb(self.ba(F.max_pool2d(e2, 2)))
        d2 = self.d2b(self.d2a(torch.cat([F.interpolate(b, scale_factor=2, mode="nearest"), e2], 1)))
        d1 = self.d1b(self.d1a(torch.cat([F.interpolate(d2, scale_factor=2, mode="nearest"), e1], 1)))
        return self.head(d1)


def w1_loss(logits, masks):
    """BCE-with-logits (mean) + soft Dice loss (per image, smoothing 1, mean over images)."""
    bce = F.binary_cross_entropy_with_logits(logits, masks)
    p = torch.sigmoid(logits)
    dims = tuple(range(1, logits.dim()))
    dice = (2 * (p * masks).sum(dims) + 1) / (p.sum(dims) + masks.sum(dims) + 1)
    return bce + 1 - dice.mean()


def formula_uniform(name, count, stream):
    """Deterministic u in [0, 1) per element: the same integer formula in Swift (TestSupport)."""
    salt = zlib.crc32(name.encode()) + 40503 * stream
    return torch.tensor([((i * 2654435761 + salt) % 2**32) / 2**32 for i in range(count)], dtype=torch.float64)


def formula_parameters(model, stream=0, gain=1.0):
    """Parameters from a formula, so fixtures need not store them: conv weights uniform in
    +-gain/sqrt(fan_in), conv biases in +-1/sqrt(fan_in), GroupNorm weight 1 +- 0.2, bias +- 0.2."""
    values = {}
    fan_in = 1
    for name, p in model.named_parameters():
        u = formula_uniform(name, p.numel(), stream)
        if p.dim() == 4:
            fan_in = p.shape[1] * p.shape[2] * p.shape[3]
        if name.endswith(".gn.weight"):
            v = 1 + 0.2 * (2 * u - 1)
        elif name.endswith(".gn.bias"):
            v = 0.2 * (2 * u - 1)
        elif p.dim() == 4:
            v = (gain / math.sqrt(fan_in)) * (2 * u - 1)
        else:
            v = (1 / math.sqrt(fan_in)) * (2 * u - 1)
        values[name] = v.to(torch.float32).reshape(p.shape)
    return values


def formula_direction(model, stream=1):
    """A direction v for Hessian-vector products: 0.1 (2u - 1) per element."""
    return {name: (0.1 * (2 * formula_uniform(name, p.numel(), stream) - 1)).to(torch.float32).reshape(p.shape)
            for name, p in model.named_parameters()}
