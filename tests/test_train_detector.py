"""The detector training code, ``examples/training/`` (only where the ``train`` extra, torch,
is installed: CI never trains, so there these tests skip): target assignment, batch-norm
folding, and that the ONNX export computes what the torch network does, in the layout
``core.postprocess`` decodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from core.models.detector import load_detector  # noqa: E402
from core.preprocess import PreprocessSpec  # noqa: E402
from examples.training.detector_net import (  # noqa: E402
    STRIDE,
    DetectorNet,
    Exported,
    NetConfig,
    assign,
    cell_centres,
)
from examples.training.train_detector import TrainingScenes, export, learning_rate  # noqa: E402

TINY = NetConfig("detector-t", (64, 96), (4, 8, 8, 8, 8), batch=2, steps=1)


def test_assignment_centre_sampling() -> None:
    centres = cell_centres(64, 96).numpy()  # 8 x 12 cells
    boxes = np.array(
        [
            [10, 10, 60, 60],  # big: several cells
            [30, 30, 34, 34],  # tiny, inside the big one: its centre cell, taken from the big
            [70, 40, 90, 60],  # hidden: ignored, not negative
        ],
        np.float32,
    )
    owner, ignore = assign(centres, boxes, np.array([0, 1, 2]), np.array([False, False, True]))
    assert (owner == 0).sum() >= 9  # 2.5 cells around the centre
    tiny_cell = int(np.argmin(((centres - 32) ** 2).sum(1)))
    assert owner[tiny_cell] == 1 and (owner == 1).sum() == 1
    assert (owner == 2).sum() == 0 and ignore.sum() >= 2
    assert not (ignore & (owner >= 0)).any()
    empty_owner, empty_ignore = assign(
        centres, np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0, bool)
    )
    assert (empty_owner == -1).all() and not empty_ignore.any()


def test_training_batch_matches_letterboxed_ground_truth() -> None:
    spec = PreprocessSpec.yolo(TINY.input_size)
    images, targets = TrainingScenes(spec, seed=1, resolutions=[(320, 180), (160, 120)]).batch(3)
    assert images.shape == (3, 3, *TINY.input_size) and images.dtype == torch.float32
    cells = (64 // STRIDE) * (96 // STRIDE)
    assert targets.owner.shape == (3, cells) and targets.ignore.shape == (3, cells)
    assert int(targets.owner.max()) < len(targets.boxes) == len(targets.classes)
    assert (targets.boxes[:, 2:] <= torch.tensor([96.0, 64.0])).all()


def test_learning_rate_schedule() -> None:
    assert (
        learning_rate(0, 1000) < learning_rate(99, 1000) == pytest.approx(learning_rate(100, 1000))
    )
    assert learning_rate(999, 1000) == pytest.approx(0.05 * learning_rate(100, 1000), rel=0.01)


def test_export_matches_torch_with_folded_batch_norm(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = DetectorNet(TINY.widths, 5)
    net.train()
    net(torch.rand(4, 3, *TINY.input_size))  # move batch-norm statistics off their defaults
    net.eval()
    x = torch.rand(2, 3, *TINY.input_size)
    with torch.no_grad():
        expected = Exported(net, TINY.input_size)(x).numpy()
        path = tmp_path / "detector-t.onnx"
        export(net, TINY, path)  # folds batch norm in place
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
        folded = Exported(net, TINY.input_size)(x).numpy()
    np.testing.assert_allclose(folded, expected, rtol=1e-4, atol=1e-4)
    detector = load_detector(path)
    assert detector.spec.size == TINY.input_size
    np.testing.assert_allclose(detector.infer(x.numpy()), expected, rtol=1e-4, atol=1e-3)
    assert (expected[..., 2] >= expected[..., 0]).all()  # x2 >= x1: softplus sides
    assert ((expected[..., 4:] >= 0) & (expected[..., 4:] <= 1)).all()
