"""The reference detector's network and training objective (PyTorch; development only).

An anchor-free, single-level detector in the YOLOX/FCOS family, small enough to train on a
2-core CPU in minutes and to run in a few milliseconds:

* backbone: five stride-2 conv-BN-SiLU stages (3x3), a second conv in each stage from stride 4
  on, a residual one at stride 8;
* neck: a top-down path (stride 32 -> 16 -> 8, nearest upsampling, concatenation), so the
  stride-8 head sees context from the whole object range (10 to 80 network pixels);
* head: one 3x3 conv, then a 1x1 conv to ``4 + C`` channels per stride-8 cell: distances to
  the box's four sides (softplus, in stride units) and ``C`` class logits.

Training targets (:func:`assign`) are FCOS's centre sampling: a cell is positive for an object
when its centre lies inside the box and within 2.5 cells of the box centre (the cell holding the
centre always is, so the smallest objects get one); a cell claimed by several objects goes to
the smallest. Cells inside mostly hidden objects are ignored. The loss is GFL's quality focal
loss (class target = IoU of the predicted box, so scores rank boxes by quality, which is what
AP measures) plus GIoU on positive cells.

:class:`Exported` wraps a trained network with the decoding, so the ONNX file's output is the
``(N, A, 4 + C)`` layout :func:`core.postprocess.decode_detections` reads: boxes in
network-input pixels, class probabilities.

torch is a development-only dependency (the ``train`` extra); only the training script
(:mod:`examples.training.train_detector`) and its tests import this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

STRIDE = 8
"""The head's cell size in network-input pixels."""
CENTRE_RADIUS = 2.5
"""Centre sampling radius, in cells."""
BOX_LOSS_WEIGHT = 2.0
PRIOR_PROBABILITY = 0.01
"""Initial class probability of every cell (focal loss's prior: a stable start)."""


@dataclass(frozen=True)
class NetConfig:
    """A detector size: network input (height, width) and the channels of the five stages."""

    name: str
    input_size: tuple[int, int]
    widths: tuple[int, int, int, int, int]
    batch: int
    steps: int


def _conv(c_in: int, c_out: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.SiLU()
    )


class _Residual(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.block(x)
        return out


class DetectorNet(nn.Module):
    """Raw outputs ``(N, 4 + C, H/8, W/8)``: side distances (before softplus) and class logits."""

    def __init__(self, widths: tuple[int, int, int, int, int], num_classes: int) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = widths
        self.num_classes = num_classes
        self.stem = _conv(3, c1, 3, 2)
        self.stage4 = nn.Sequential(_conv(c1, c2, 3, 2), _conv(c2, c2))
        self.stage8 = nn.Sequential(_conv(c2, c3, 3, 2), _Residual(_conv(c3, c3)))
        self.stage16 = nn.Sequential(_conv(c3, c4, 3, 2), _conv(c4, c4))
        self.stage32 = nn.Sequential(_conv(c4, c5, 3, 2), _conv(c5, c5))
        self.lateral32 = _conv(c5, c4, 1)
        self.merge16 = _conv(2 * c4, c4)
        self.lateral16 = _conv(c4, c3, 1)
        self.merge8 = _conv(2 * c3, c3)
        self.head = _conv(c3, c3)
        self.predict = nn.Conv2d(c3, 4 + num_classes, 1)
        bias = self.predict.bias
        assert bias is not None
        with torch.no_grad():
            bias[:4].fill_(1.0)  # softplus(1) * 8: boxes of ~20 pixels to start
            bias[4:].fill_(-float(np.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f8 = self.stage8(self.stage4(self.stem(x)))
        f16 = self.stage16(f8)
        f32 = self.stage32(f16)
        up = F.interpolate(self.lateral32(f32), scale_factor=2.0, mode="nearest")
        f16 = self.merge16(torch.cat([f16, up], 1))
        up = F.interpolate(self.lateral16(f16), scale_factor=2.0, mode="nearest")
        f8 = self.merge8(torch.cat([f8, up], 1))
        out: torch.Tensor = self.predict(self.head(f8))
        return out


def cell_centres(height: int, width: int) -> torch.Tensor:
    """``(A, 2)`` (x, y) centres of the stride-8 cells of a ``height x width`` input, row-major."""
    ys, xs = torch.meshgrid(
        (torch.arange(height // STRIDE, dtype=torch.float32) + 0.5) * STRIDE,
        (torch.arange(width // STRIDE, dtype=torch.float32) + 0.5) * STRIDE,
        indexing="ij",
    )
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)


def decode(raw: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw outputs to (boxes ``(N, A, 4)`` xyxy in input pixels, class logits ``(N, A, C)``)."""
    flat = raw.flatten(2).transpose(1, 2)
    sides = F.softplus(flat[..., :4]) * STRIDE
    boxes = torch.cat([centres - sides[..., :2], centres + sides[..., 2:]], -1)
    return boxes, flat[..., 4:]


class Exported(nn.Module):
    """A trained net plus decoding: input ``images``, output ``(N, A, 4 + C)`` for ONNX."""

    centres: torch.Tensor

    def __init__(self, net: DetectorNet, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("centres", cell_centres(*input_size))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        boxes, logits = decode(self.net(images), self.centres)
        return torch.cat([boxes, torch.sigmoid(logits)], -1)


def fold_batch_norm(module: nn.Module) -> None:
    """Fold every conv-BN pair into the conv (in place, eval mode): fewer, cheaper ONNX nodes."""
    for child in module.children():
        if (
            isinstance(child, nn.Sequential)
            and len(child) >= 2
            and isinstance(child[0], nn.Conv2d)
            and isinstance(child[1], nn.BatchNorm2d)
        ):
            child[0] = torch.nn.utils.fusion.fuse_conv_bn_eval(child[0], child[1])
            child[1] = nn.Identity()
        else:
            fold_batch_norm(child)


def box_iou_pairs(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(IoU, GIoU) of matching rows of two ``(K, 4)`` xyxy box sets."""
    lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(1)
    union = area_a + area_b - inter + 1e-7
    iou = inter / union
    hull = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).prod(1) + 1e-7
    return iou, iou - (hull - union) / hull


def assign(
    centres: np.ndarray, boxes: np.ndarray, classes: np.ndarray, hidden: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Targets for one image: per cell the object index it learns (-1 none) and an ignore flag.

    ``centres`` ``(A, 2)``, ``boxes`` ``(K, 4)`` in input pixels, ``classes`` ``(K,)``,
    ``hidden`` ``(K,)`` bool: objects too hidden to learn (their cells are ignored, not negative).
    """
    owner = np.full(len(centres), -1, np.int64)
    ignore: np.ndarray = np.zeros(len(centres), bool)
    if len(boxes) == 0:
        return owner, ignore
    x, y = centres[:, 0:1], centres[:, 1:2]
    inside = (x > boxes[:, 0]) & (x < boxes[:, 2]) & (y > boxes[:, 1]) & (y < boxes[:, 3])
    mid = (boxes[:, :2] + boxes[:, 2:]) / 2
    reach = CENTRE_RADIUS * STRIDE
    near = (np.abs(x - mid[:, 0]) < reach) & (np.abs(y - mid[:, 1]) < reach)
    candidate = inside & near
    nearest = np.argmin((x - mid[:, 0]) ** 2 + (y - mid[:, 1]) ** 2, axis=0)
    candidate[nearest, np.arange(len(boxes))] = True
    if hidden.any():
        ignore = np.asarray(inside[:, hidden].any(axis=1))
    candidate[:, hidden] = False
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    cost = np.where(candidate, area[None, :], np.inf)
    best = np.argmin(cost, axis=1)
    positive = np.isfinite(cost[np.arange(len(centres)), best])
    owner[positive] = best[positive]
    ignore &= ~positive
    return owner, ignore


class Targets(NamedTuple):
    """A batch's targets: ``owner`` ``(N, A)`` indexes the flat ``boxes`` ``(T, 4)`` and
    ``classes`` ``(T,)`` of the batch's objects (-1: background); ``ignore`` ``(N, A)`` masks
    cells out of the class loss."""

    owner: torch.Tensor
    ignore: torch.Tensor
    boxes: torch.Tensor
    classes: torch.Tensor


def loss(
    raw: torch.Tensor, centres: torch.Tensor, targets: Targets
) -> tuple[torch.Tensor, dict[str, float]]:
    """Quality focal loss + GIoU for a batch, normalised by the number of positive cells."""
    owner, ignore, target_boxes, target_classes = targets
    boxes, logits = decode(raw, centres)
    positive = owner >= 0
    num_pos = max(int(positive.sum()), 1)
    pred = boxes[positive]
    matched = owner[positive]
    iou, giou = box_iou_pairs(pred, target_boxes[matched])
    quality = torch.zeros_like(logits)
    quality[positive, target_classes[matched]] = iou.detach().clamp(min=0.0)
    prob = logits.sigmoid()
    focal = F.binary_cross_entropy_with_logits(logits, quality, reduction="none")
    focal = focal * (prob - quality).abs().pow(2)
    focal = focal * (~ignore).unsqueeze(-1)
    cls_loss = focal.sum() / num_pos
    box_loss = (1.0 - giou).sum() / num_pos
    total = cls_loss + BOX_LOSS_WEIGHT * box_loss
    return total, {
        "cls": float(cls_loss.detach()),
        "box": float(box_loss.detach()),
        "iou": float(iou.detach().mean()) if len(iou) else 0.0,
    }
