"""IR -> visible registration by homography."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_node.pipeline import Registration, RegistrationError


def test_translation_moves_a_dot() -> None:
    ir = np.zeros((40, 60), np.uint8)
    ir[20, 10] = 255  # (x=10, y=20)
    warped = Registration([1, 0, 5, 0, 1, 3, 0, 0, 1]).warp_ir(ir, (50, 70, 3))
    assert warped.shape == (50, 70)
    assert np.unravel_index(np.argmax(warped), warped.shape) == (23, 15)
    assert warped[23, 15] == 255


def test_scale_maps_small_ir_onto_visible() -> None:
    ir = np.zeros((30, 40), np.uint8)
    ir[10:20, 10:20] = 200
    warped = Registration(np.diag([2.0, 2.0, 1.0])).warp_ir(ir, (60, 80))
    assert warped[30, 30] == 200 and warped[10, 10] == 0 and warped[50, 50] == 0


def test_no_homography() -> None:
    ir = np.zeros((4, 6), np.uint8)
    assert Registration(None).warp_ir(ir, (4, 6, 3)) is ir
    assert Registration([]).homography is None
    with pytest.raises(RegistrationError, match=r"IR image is 6×4 but visible is 8×5.*homography"):
        Registration().warp_ir(ir, (5, 8, 3))


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([1, 0, 0, 0, 1, 0, 0, 0], "8 values"),
        ([1, 0, float("nan"), 0, 1, 0, 0, 0, 1], "NaN"),
        ([1, 2, 0, 2, 4, 0, 0, 0, 1], "singular"),
    ],
)
def test_invalid_matrices(matrix: list[float], message: str) -> None:
    with pytest.raises(RegistrationError, match=message):
        Registration(matrix)
