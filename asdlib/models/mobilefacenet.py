"""MobileFaceNet backbone as used by STgram-MFN, with the final kernel derived from the input size."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torch.autograd.function import once_differentiable

MFNBlocks = Literal["mfn15", "mfn6"]

# Inverted-residual stages (expansion t, output channels c, repeats n, first stride s).
BLOCK_CONFIGS: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    # 15 bottlenecks: the configuration STgram-MFN's published numbers came from.
    "mfn15": ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1)),
    # 6 bottlenecks: a smaller variant (the 15-block table above is MobileFaceNet's original).
    "mfn6": ((2, 128, 2, 2), (4, 128, 2, 2), (4, 128, 2, 2)),
}


class _ChannelPReLUFunction(torch.autograd.Function):
    """``relu(x) - slope * relu(-x)`` with the bits of autograd's gradients of that formula,
    in fewer passes over the activations.

    Forward is PyTorch's one-pass ``torch.prelu`` (bit-equal: for ``x < 0`` both give
    ``slope * x`` exactly, else ``x``). Backward rebuilds what autograd computes through the
    five element-wise ops of the formula, from 6 passes instead of 12 (no intermediate of
    the forward is kept): ``d/dx`` is ``grad`` where ``x > 0``, ``grad * slope`` where
    ``x < 0`` and 0 at 0; ``d/dslope`` sums ``-grad * relu(-x)``. PyTorch's own PReLU
    backward kernel gives the same values but took 53 ms on a 32 x 128 x 64 x 32 map on
    one thread, against 3-6 ms for each pass used here.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return torch.prelu(x, weight)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, weight = ctx.saved_tensors
        negative_part = x.neg().clamp_min_(0)  # relu(-x)
        dims = [0, *range(2, x.dim())]
        grad_weight = (grad * negative_part).sum(dims).neg_()
        grad_x = _threshold_backward(grad, x, 0)
        slope = weight.view(1, -1, *([1] * (x.dim() - 2)))
        grad_x.add_(_threshold_backward(grad * slope, negative_part, 0))
        return grad_x, grad_weight


_threshold_backward = torch.ops.aten.threshold_backward  # grad where input > threshold, else 0


class ChannelPReLU(nn.Module):
    """PReLU with one slope per channel: ``relu(x) - slope * relu(-x)``.

    The same function and state-dict key (``weight``, initial slope 0.25) as
    ``nn.PReLU(channels)``. The committed results were trained with this formula written
    as five element-wise ops; :class:`_ChannelPReLUFunction` gives the same bits (values
    and gradients) in fewer passes: an STgram-MFN training step of 32 two-second clips is
    5-7 % faster on one CPU thread (docs/architecture.md).
    """

    def __init__(self, channels: int, init: float = 0.25) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ChannelPReLUFunction.apply(x, self.weight)


def _conv_bn(n_in: int, n_out: int, kernel: int | tuple[int, int], stride: int = 1,
             padding: int = 0, groups: int = 1, prelu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(n_in, n_out, kernel, stride, padding, groups=groups, bias=False),
        nn.BatchNorm2d(n_out),
    ]
    if prelu:
        layers.append(ChannelPReLU(n_out))
    return nn.Sequential(*layers)


def _strided_size(size: int, stride: int) -> int:
    """Output size of a 3x3 conv with padding 1."""
    return (size + 2 - 3) // stride + 1


class Bottleneck(nn.Module):
    """Inverted residual: 1x1 expand + BN + PReLU, 3x3 depthwise + BN + PReLU, 1x1 project + BN;
    identity shortcut when stride is 1 and the channel count is unchanged."""

    def __init__(self, n_in: int, n_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = n_in * expansion
        self.residual = stride == 1 and n_in == n_out
        self.body = nn.Sequential(
            _conv_bn(n_in, hidden, 1),
            _conv_bn(hidden, hidden, 3, stride, 1, groups=hidden),
            _conv_bn(hidden, n_out, 1, prelu=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class MobileFaceNet(nn.Module):
    """``(batch, in_channels, height, width)`` -> ``(batch, embedding_dim)`` embedding.

    conv 3x3/2 -> 64 + BN + PReLU; depthwise 3x3 + BN + PReLU; bottleneck stages;
    1x1 -> 512 + BN + PReLU; global depthwise conv whose kernel is the whole final map
    (``gdc_kernel``, 8 x 20 for a 128 x 313 input) + BN; 1x1 -> embedding_dim + BN.
    The input size is fixed at construction because the global kernel depends on it.

    Weights and activations are kept channels-last (NHWC), in which oneDNN's CPU
    convolutions run this network faster, as do GPU tensor cores; values differ from the
    default layout in the last bits only.
    """

    def __init__(self, input_size: tuple[int, int], blocks: MFNBlocks = "mfn15",
                 in_channels: int = 2, embedding_dim: int = 128) -> None:
        super().__init__()
        if blocks not in BLOCK_CONFIGS:
            raise ValueError(f"blocks must be one of {sorted(BLOCK_CONFIGS)}, got {blocks!r}")
        self.input_size = tuple(input_size)
        self.gdc_kernel = self.final_map_size(self.input_size, blocks)
        if min(self.gdc_kernel) < 1:
            raise ValueError(f"input size {input_size} is too small for MobileFaceNet")
        stages: list[nn.Module] = []
        channels = 64
        for expansion, n_out, repeats, stride in BLOCK_CONFIGS[blocks]:
            for i in range(repeats):
                stages.append(Bottleneck(channels, n_out, stride if i == 0 else 1, expansion))
                channels = n_out
        self.stem = nn.Sequential(
            _conv_bn(in_channels, 64, 3, 2, 1),
            _conv_bn(64, 64, 3, 1, 1, groups=64),
        )
        self.stages = nn.Sequential(*stages)
        self.expand = _conv_bn(channels, 512, 1)
        self.global_dw = _conv_bn(512, 512, self.gdc_kernel, groups=512, prelu=False)
        self.project = _conv_bn(512, embedding_dim, 1, prelu=False)
        self.to(memory_format=torch.channels_last)

    @staticmethod
    def final_map_size(input_size: tuple[int, int], blocks: MFNBlocks) -> tuple[int, int]:
        """Height and width of the map entering the global depthwise conv."""
        height, width = _strided_size(input_size[0], 2), _strided_size(input_size[1], 2)
        for _, _, _, stride in BLOCK_CONFIGS[blocks]:
            height, width = _strided_size(height, stride), _strided_size(width, stride)
        return height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[2:]) != self.input_size:
            raise ValueError(
                f"MobileFaceNet built for (batch, C, {self.input_size[0]}, {self.input_size[1]}),"
                f" got {tuple(x.shape)}"
            )
        x = self.expand(self.stages(self.stem(x.contiguous(memory_format=torch.channels_last))))
        return self.project(self.global_dw(x)).flatten(1)
