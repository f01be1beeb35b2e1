"""Box-supervised losses on synthetic scenes: each term is lowest at the right mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.losses.boxseg import (
    BoxSegLossConfig,
    box_seg_loss,
    class_regions,
    lab_ir_guide,
    rasterize,
    similar_edges,
    warm_prior,
)
from training.losses.errors import LossError
from training.models.seg_classes import SEG_CLASSES

H, W = 40, 56
PERSON, VEHICLE = SEG_CLASSES.index("person"), SEG_CLASSES.index("vehicle")
CFG = BoxSegLossConfig()


def ellipse(cy: float, cx: float, ry: float, rx: float) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    return ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1


def tight_box(mask: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)


OBJECT = ellipse(20, 28, 12, 8)  # a person-shaped blob
BOX = tight_box(OBJECT)


def logits_of(mask: torch.Tensor, cls: int = PERSON, sharpness: float = 8.0) -> torch.Tensor:
    """[1,C,H,W] logits whose argmax is `cls` on `mask`, background elsewhere."""
    labels = torch.where(mask, cls, 0)
    return sharpness * torch.nn.functional.one_hot(labels, len(SEG_CLASSES)).permute(2, 0, 1)[None].float()


def scene() -> tuple[torch.Tensor, torch.Tensor]:
    """(guide, ir): a bright grey object on a dark background in both sources; the IR object warm."""
    bgr = torch.where(OBJECT, 0.8, 0.2).expand(1, 3, H, W).contiguous()
    ir = torch.where(OBJECT, 0.9, 0.3)[None, None]
    return lab_ir_guide(bgr, ir), ir


def loss(logits: torch.Tensor, boxes: list, classes: list, guide: torch.Tensor, ir: torch.Tensor) -> dict:
    """box_seg_loss with the guide's edges and the IR's warmth computed as the trainer does."""
    return box_seg_loss(logits, boxes, classes, similar_edges(guide, CFG), warm_prior(ir, CFG), CFG)


def losses(mask: torch.Tensor, boxes: torch.Tensor = BOX, cls: int = PERSON) -> dict[str, float]:
    out = loss(logits_of(mask, cls), [boxes], [torch.full((len(boxes),), cls)], *scene())
    return {k: float(v) for k, v in out.items()}


def box_mask(box: torch.Tensor) -> torch.Tensor:
    return rasterize(box, (H, W))[0]


def test_rasterize_covers_pixel_centres_and_at_least_one_pixel() -> None:
    m = rasterize(torch.tensor([[2.0, 3.0, 5.0, 4.0], [10.2, 10.2, 10.3, 10.3]]), (H, W))
    assert m[0].sum() == 3 and m[0, 3, 2:5].all() and not m[0, 3, 5]
    assert m[1].sum() == 1 and m[1, 10, 10]
    grown = rasterize(torch.tensor([[10.0, 10.0, 20.0, 20.0]]), (H, W), margin=0.5)[0]
    assert grown.sum() == 20 * 20 and grown[5, 5] and not grown[4, 4]


def test_class_regions_union_per_class_background_everywhere() -> None:
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [2.0, 2.0, 6.0, 6.0], [10.0, 10.0, 12.0, 12.0]])
    regions = class_regions(boxes, torch.tensor([PERSON, PERSON, VEHICLE]), len(SEG_CLASSES), (H, W))
    assert regions[0].all()
    assert regions[PERSON].sum() == 16 + 16 - 4 and regions[VEHICLE].sum() == 4
    assert not regions[SEG_CLASSES.index("two-wheeler")].any()


def test_projection_is_zero_in_the_box_and_grows_with_leaks_and_gaps() -> None:
    perfect = losses(OBJECT)["projection"]
    assert perfect < 0.01
    assert losses(box_mask(BOX))["projection"] < 0.01  # the projection alone cannot tell shape
    leaking = OBJECT | ellipse(20, 42, 4, 6)  # spills past the box's right edge
    assert losses(leaking)["projection"] > perfect + 0.05
    half = OBJECT & (torch.arange(W) < 28)  # leaves the right half of the box empty
    assert losses(half)["projection"] > perfect + 0.1
    assert losses(torch.zeros(H, W, dtype=torch.bool))["projection"] > 1.9  # empty: both dice ≈ 1


def test_projection_with_two_boxes_of_a_class_is_zero_for_both_objects() -> None:
    second = ellipse(20, 48, 6, 4)
    boxes = torch.cat([BOX, tight_box(second)])  # windows overlap: the union is the target
    assert losses(OBJECT | second, boxes)["projection"] < 0.02
    assert losses(OBJECT, boxes)["projection"] > 0.3  # the second object missing


def test_box_label_is_background_outside_boxes() -> None:
    assert losses(OBJECT)["box_label"] < 0.01
    assert losses(box_mask(BOX))["box_label"] < 0.01  # in-box pixels may be either class
    assert losses(OBJECT | ellipse(5, 5, 4, 4))["box_label"] > 0.05  # a blob outside every box
    # The wrong class inside the box is not allowed either.
    assert losses(OBJECT, cls=PERSON)["box_label"] < losses(OBJECT, cls=VEHICLE)["box_label"] + 1e-6
    guide, ir = scene()
    wrong = loss(logits_of(OBJECT, VEHICLE), [BOX], [torch.tensor([PERSON])], guide, ir)
    assert float(wrong["box_label"]) > 0.05


def test_affinity_prefers_the_mask_that_follows_the_intensity_edge() -> None:
    follows = losses(OBJECT)["affinity"]
    fills_box = losses(box_mask(BOX))["affinity"]
    cuts_object = losses(OBJECT & (torch.arange(H)[:, None] < 20))["affinity"]
    assert follows < 0.01
    assert fills_box > follows + 0.05 and cuts_object > follows + 0.05


def test_affinity_uses_ir_edges_where_the_visible_image_is_flat() -> None:
    flat = torch.full((1, 3, H, W), 0.05)  # a dark visible image: no colour edge
    ir = torch.where(OBJECT, 0.9, 0.3)[None, None]
    logits = logits_of(box_mask(BOX))
    with_ir = loss(logits, [BOX], [torch.tensor([PERSON])], lab_ir_guide(flat, ir), ir)
    no_ir = loss(logits, [BOX], [torch.tensor([PERSON])], lab_ir_guide(flat, torch.zeros_like(ir)), ir)
    # The box-filling mask crosses the IR edge: only the IR channel of the guide can see that.
    assert float(no_ir["affinity"]) > float(with_ir["affinity"]) + 0.05


def test_warm_prior_prefers_the_warm_part_of_the_box() -> None:
    warm_part = losses(OBJECT)["warm"]  # not 0: the smoothed warm region spills a pixel past it
    cold_part = losses(box_mask(BOX) & ~OBJECT)["warm"]
    assert cold_part > warm_part + 5.0
    assert losses(box_mask(BOX))["warm"] < 0.01  # cold pixels are not pushed to background


def test_total_is_lowest_at_the_object_mask() -> None:
    candidates = {
        "object": OBJECT,
        "box": box_mask(BOX),
        "leaking": OBJECT | ellipse(20, 42, 4, 6),
        "half": OBJECT & (torch.arange(W) < 28),
        "empty": torch.zeros(H, W, dtype=torch.bool),
    }
    totals = {name: losses(mask)["total"] for name, mask in candidates.items()}
    assert min(totals, key=lambda k: totals[k]) == "object", totals


def test_gradients_reach_the_logits_and_an_image_without_boxes_is_all_background() -> None:
    guide, ir = scene()
    logits = torch.zeros(2, len(SEG_CLASSES), H, W, requires_grad=True)
    no_boxes = (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    boxes, classes = [BOX, no_boxes[0]], [torch.tensor([PERSON]), no_boxes[1]]
    out = loss(logits, boxes, classes, guide.repeat(2, 1, 1, 1), ir.repeat(2, 1, 1, 1))
    out["total"].backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    # Descending the gradient raises background on the box-free image.
    assert (logits.grad[1, 0] < 0).all()


def test_bad_inputs_are_one_clear_error() -> None:
    guide, ir = scene()
    with pytest.raises(LossError, match="object classes"):
        loss(logits_of(OBJECT), [BOX], [torch.tensor([0])], guide, ir)
    with pytest.raises(LossError, match="box/class lists"):
        loss(logits_of(OBJECT), [BOX, BOX], [torch.tensor([1])], guide, ir)
    with pytest.raises(LossError, match="weights"):
        BoxSegLossConfig(w_affinity=-1.0)


def test_lab_guide_matches_opencv_on_a_colour() -> None:
    bgr = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)  # pure red
    guide = lab_ir_guide(bgr, torch.full((1, 1, 2, 2), 0.5))
    np.testing.assert_allclose(guide[0, :, 0, 0].numpy(), [53.24, 80.09, 67.20, 50.0], atol=0.05)
