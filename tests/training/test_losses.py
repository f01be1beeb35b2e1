"""Loss functions on real images and hand-made examples whose answers are known."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import pytest
import torch
import torch.nn.functional as F

from training.losses import (
    FusionLossConfig,
    GanLossConfig,
    LossError,
    SemanticLossConfig,
    brighter_mask,
    detection_loss,
    discriminator_loss,
    fcos_targets,
    fusion_loss,
    generator_loss,
    giou_loss,
    ohem_select,
    saliency_mask,
    saliency_target,
    segmentation_loss,
    semantic_loss,
    ssim,
)
from training.losses.fusion import gradient_target
from training.models.points import make_points


def _gray(path: Path, size: int = 96) -> torch.Tensor:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        pytest.skip(f"cannot read {path}")
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(img).float().div(255).view(1, 1, size, size)


@pytest.fixture()
def tno_pair(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return _gray(data_dir / "tno" / "ir" / "01.png"), _gray(data_dir / "tno" / "vi" / "01.png")


def test_ssim_is_one_for_identical_and_lower_for_noisy(tno_pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    ir, _ = tno_pair
    assert float(ssim(ir, ir)) == pytest.approx(1.0, abs=1e-5)
    noisy = (ir + 0.1 * torch.randn(ir.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert float(ssim(ir, noisy)) < 0.9


def test_saliency_marks_a_hot_target_on_a_flat_scene() -> None:
    ir = torch.full((1, 1, 128, 128), 0.2)
    ir[..., 58:70, 58:70] = 0.9  # a hot 12×12 target, small against the 24 px background blur
    vis_y = torch.full_like(ir, 0.5)
    m = saliency_mask(ir, vis_y)
    assert float(m[0, 0, 64, 64]) > 0.95
    assert float(m[0, 0, 10, 10]) < 0.05
    target = saliency_target(ir, vis_y, m)
    assert float(target[0, 0, 64, 64]) == pytest.approx(0.9, abs=0.03)
    assert float(target[0, 0, 10, 10]) == pytest.approx(0.5, abs=0.03)
    # a weaker target where the visible image already shows strong detail is not salient
    ir_weak = torch.where(ir > 0.5, 0.5, 0.2)
    stripes = vis_y.clone()
    stripes[..., 58:70, 58:70] = torch.tensor([0.0, 1.0]).repeat(6)  # ±0.5 visible contrast
    assert float(saliency_mask(ir_weak, vis_y)[0, 0, 64, 64]) > 0.95
    assert float(saliency_mask(ir_weak, stripes)[0, 0, 64, 64]) < 0.05


def test_saliency_on_real_pair_is_a_proper_mask(tno_pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    m = saliency_mask(*tno_pair)
    assert m.shape == tno_pair[0].shape and float(m.min()) >= 0 and float(m.max()) <= 1
    assert 0.0 < float(m.mean()) < 0.5  # some salient pixels, mostly background


def test_brighter_mask_targets_the_brighter_source() -> None:
    ir = torch.full((1, 1, 64, 64), 0.2)
    ir[..., :, 32:] = 0.8  # right half: IR brighter than the visible image
    vis_y = torch.full_like(ir, 0.5)
    m = brighter_mask(ir, vis_y)
    assert float(m[0, 0, 32, 5]) < 0.01 and float(m[0, 0, 32, 60]) > 0.99
    target = saliency_target(ir, vis_y, m)
    far_from_edge = (..., slice(None), [*range(0, 24), *range(40, 64)])
    assert torch.allclose(target[far_from_edge], torch.maximum(ir, vis_y)[far_from_edge], atol=1e-3)
    cfg = FusionLossConfig(saliency_mode="brighter")
    assert float(fusion_loss(target, ir, vis_y, cfg)["intensity"]) < 1e-6
    with pytest.raises(LossError, match="saliency_mode"):
        FusionLossConfig(saliency_mode="hottest")


def test_max_target_and_gradient_gain(tno_pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    """saliency_mode "max" targets max(IR, VIS_Y) exactly; gradient_gain scales the edge target."""
    ir, vis_y = tno_pair
    cfg = FusionLossConfig(saliency_mode="max")
    assert float(fusion_loss(torch.maximum(ir, vis_y), ir, vis_y, cfg)["intensity"]) < 1e-7
    assert float(fusion_loss(vis_y, ir, vis_y, cfg)["intensity"]) > 0.01
    ramp = torch.linspace(0.0, 0.4, 64).expand(1, 1, 64, 64).contiguous()
    flat = torch.full_like(ramp, 0.5)
    doubled = 2 * ramp  # edges twice as strong as the strongest source's
    gain2 = fusion_loss(doubled, ramp, flat, FusionLossConfig(gradient_gain=2.0))["gradient"]
    gain1 = fusion_loss(doubled, ramp, flat, FusionLossConfig())["gradient"]
    assert float(gain2) < 1e-4 < 0.5 * float(gain1)
    with pytest.raises(LossError, match="weights"):
        FusionLossConfig(gradient_gain=-1.0)


def test_sum_target_is_the_contrast_sum(tno_pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    """intensity_target "sum": IR + VIS_Y − (μ_IR + μ_VIS)/2 per image, clipped: twice the mean
    fusion's contrast before clipping, so the mean of the sources is far from it."""
    ir, vis_y = tno_pair
    cfg = FusionLossConfig(intensity_target="sum")
    target = (ir + vis_y - (ir.mean() + vis_y.mean()) / 2).clamp(0.0, 1.0)
    assert float(fusion_loss(target, ir, vis_y, cfg)["intensity"]) < 1e-7
    assert float(target.std()) > 1.5 * float(((ir + vis_y) / 2).std())
    assert float(fusion_loss((ir + vis_y) / 2, ir, vis_y, cfg)["intensity"]) > 0.02
    with pytest.raises(LossError, match="intensity_target"):
        FusionLossConfig(intensity_target="product")


def test_fusion_loss_is_small_at_the_target(tno_pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    ir, vis_y = tno_pair
    cfg = FusionLossConfig()
    target = saliency_target(ir, vis_y, saliency_mask(ir, vis_y))
    at_target = fusion_loss(target, ir, vis_y, cfg)
    flat = fusion_loss(torch.full_like(ir, 0.5), ir, vis_y, cfg)
    assert set(at_target) == {"intensity", "gradient", "ssim", "total"}
    assert float(at_target["intensity"]) < 1e-6
    assert float(at_target["total"]) < 0.5 * float(flat["total"])
    weighted = fusion_loss(target, ir, vis_y, FusionLossConfig(w_gradient=2.0))
    assert float(weighted["gradient"]) == pytest.approx(2 * float(at_target["gradient"]))
    with pytest.raises(LossError, match="fusion_loss"):
        fusion_loss(target[..., :10], ir, vis_y, cfg)


class ZeroCritic(torch.nn.Module):
    """Logit 0 for everything; remembers what each head saw."""

    def forward(self, x_ir: torch.Tensor, x_vis: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen = (x_ir, x_vis)
        zero = (x_ir.sum(dim=(1, 2, 3)) + x_vis.sum(dim=(1, 2, 3))) * 0
        return {"ir": zero, "vis": zero}


def test_gan_losses_values_and_masking() -> None:
    ir, vis_y, fused = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    m = torch.rand(2, 1, 8, 8)
    d = ZeroCritic()
    ls = discriminator_loss(d, fused, ir, vis_y, m, GanLossConfig(kind="lsgan"))
    assert float(ls["total"]) == pytest.approx(1.0)  # per head 0.5·(0−1)² + 0.5·0²
    bce = discriminator_loss(d, fused, ir, vis_y, m, GanLossConfig(kind="bce"))
    assert float(bce["total"]) == pytest.approx(4 * math.log(2))
    gen = generator_loss(d, fused, ir, vis_y, m, GanLossConfig(kind="lsgan", weight=0.2))
    assert float(gen["total"]) == pytest.approx(0.2 * 1.0)
    assert torch.equal(d.seen[0], m * fused) and torch.equal(d.seen[1], (1 - m) * fused)
    with pytest.raises(LossError, match=r"gan_loss\.kind"):
        GanLossConfig(kind="wgan")  # type: ignore[arg-type]


def test_fcos_targets_on_a_hand_made_example() -> None:
    # 32×32 image, stride 8: point centres at 4, 12, 20, 28 on each axis
    points = make_points([(4, 4)], [8])
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0], [0.0, 0.0, 32.0, 32.0]])
    labels = torch.tensor([3, 1])
    t_labels, t_ltrb = fcos_targets(points, [8], [[0.0, 64.0]], boxes, labels)
    grid = t_labels.view(4, 4)
    # the top-left 2×2 points are inside both boxes: the smaller one (label 3) wins; the rest: label 1
    expected = torch.ones(4, 4, dtype=torch.long)
    expected[:2, :2] = 3
    assert torch.equal(grid, expected)
    assert torch.allclose(t_ltrb[0], torch.tensor([4.0, 4.0, 12.0, 12.0]) / 8)  # point (4, 4), small box
    assert torch.allclose(t_ltrb[5], torch.tensor([12.0, 12.0, 4.0, 4.0]) / 8)  # point (12, 12)
    assert torch.allclose(t_ltrb[15], torch.tensor([28.0, 28.0, 4.0, 4.0]) / 8)  # point (28, 28), big box
    # scale range (0, 16]: the big box's points (max ltrb > 16) become negatives
    t_labels, _ = fcos_targets(points, [8], [[0.0, 16.0]], boxes, labels)
    assert int((t_labels >= 0).sum()) == 4 and int(t_labels[0]) == 3 and int(t_labels[15]) == -1
    empty_labels, _ = fcos_targets(
        points, [8], [[0.0, 64.0]], torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    )
    assert bool((empty_labels == -1).all())


def test_giou_loss() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 7.0, 9.0]])
    assert torch.allclose(giou_loss(boxes, boxes), torch.zeros(2), atol=1e-6)
    far = torch.tensor([[20.0, 20.0, 30.0, 30.0], [5.0, 5.0, 7.0, 9.0]])
    loss = giou_loss(boxes, far)
    assert float(loss[0]) > 1.0 and float(loss[1]) == pytest.approx(0.0, abs=1e-6)


def _det_out(p_cls: float, ltrb: torch.Tensor) -> dict[str, object]:
    return {
        "cls": [torch.full((1, 2, 4, 4), p_cls)],
        "reg": [ltrb.view(1, 4, 1, 1).expand(1, 4, 4, 4).clone()],
        "ctr": [torch.zeros(1, 1, 4, 4)],
    }


def test_detection_loss_terms() -> None:
    cfg = SemanticLossConfig(scale_ranges=[[0.0, 64.0]])
    boxes, labels = [torch.tensor([[0.0, 0.0, 32.0, 32.0]])], [torch.tensor([0])]
    centre_ltrb = torch.tensor([2.0, 2.0, 2.0, 2.0])  # exact only for the image centre; others differ
    out = _det_out(-4.0, centre_ltrb)
    losses = detection_loss(out, boxes, labels, [8], cfg)
    assert set(losses) == {"cls", "box", "ctr", "total"} and float(losses["box"]) > 0
    # an image without boxes: only negatives, box/ctr terms zero, cls lower for low scores
    empty_labels = [torch.zeros(0, dtype=torch.long)]
    empty = detection_loss(out, [torch.zeros(0, 4)], empty_labels, [8], cfg)
    assert float(empty["box"]) == 0.0 and float(empty["ctr"]) == 0.0
    confident = detection_loss(_det_out(4.0, centre_ltrb), [torch.zeros(0, 4)], empty_labels, [8], cfg)
    assert float(empty["cls"]) < float(confident["cls"])
    with pytest.raises(LossError, match="class"):
        detection_loss(out, boxes, [torch.tensor([5])], [8], cfg)


def test_ohem_keeps_the_hardest_fraction() -> None:
    losses = torch.arange(100, dtype=torch.float32)
    kept = ohem_select(losses, 0.1, None)
    assert sorted(kept.tolist()) == list(range(90, 100))
    assert sorted(ohem_select(losses, 0.05, 89.5).tolist()) == list(range(90, 100))  # threshold keeps more
    assert ohem_select(losses, 1.0, None).numel() == 100


def test_segmentation_loss_ignore_and_ohem() -> None:
    logits = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    mask = torch.full((1, 4, 4), 255, dtype=torch.long)
    mask[0, 1, 2] = 2
    out = segmentation_loss(logits, mask, SemanticLossConfig())
    expected = F.cross_entropy(logits[:, :, 1, 2], torch.tensor([2]))
    assert float(out["ce"]) == pytest.approx(float(expected), rel=1e-5)
    full = torch.randint(0, 3, (1, 4, 4), generator=torch.Generator().manual_seed(1))
    plain = float(segmentation_loss(logits, full, SemanticLossConfig())["ce"])
    hard = float(segmentation_loss(logits, full, SemanticLossConfig(ohem_keep_fraction=0.25))["ce"])
    assert hard > plain
    with pytest.raises(LossError, match="seg_class_names"):
        segmentation_loss(logits, torch.full((1, 4, 4), 7, dtype=torch.long), SemanticLossConfig())


def test_semantic_loss_combines_what_the_batch_has() -> None:
    cfg = SemanticLossConfig(scale_ranges=[[0.0, 64.0]])
    out = {**_det_out(0.0, torch.ones(4)), "seg": torch.zeros(1, 3, 32, 32)}
    batch = {"visible": torch.zeros(1, 3, 32, 32), "boxes": [torch.tensor([[0.0, 0.0, 16.0, 16.0]])]}
    batch["labels"] = [torch.tensor([1])]
    det_only = semantic_loss(out, {**batch, "mask": None}, cfg)  # strides inferred: 32 / 4 = 8
    assert "det_cls" in det_only and "seg_ce" not in det_only
    zeros_mask = torch.zeros(1, 32, 32, dtype=torch.long)
    seg_only = semantic_loss(out, {**batch, "boxes": None, "mask": zeros_mask}, cfg)
    assert float(seg_only["total"]) == pytest.approx(math.log(3), rel=1e-5)
    both = semantic_loss(out, {**batch, "mask": zeros_mask}, cfg)
    expected = float(det_only["total"]) + float(seg_only["total"])
    assert float(both["total"]) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(LossError, match="neither"):
        semantic_loss(out, {**batch, "boxes": None, "mask": None}, cfg)


def test_balanced_gradient_target_keeps_the_weaker_sources_texture() -> None:
    """IR with strong edges on one half, visible with weak texture on the other: the plain max
    target keeps the visible texture at its weak scale, the balanced one lifts it to the IR's."""
    ir = torch.zeros(1, 1, 32, 32)
    ir[..., :, 8:] = 1.0  # one strong vertical step edge
    vis = torch.zeros(1, 1, 32, 32)
    vis[..., 20:, :] = 0.05 * ((torch.arange(32) // 2) % 2).float()  # weak texture, lower part
    plain = gradient_target(ir, vis, balance=False)
    balanced = gradient_target(ir, vis, balance=True)
    texture = (slice(None), slice(None), slice(22, 30), slice(12, 30))  # visible texture only
    assert balanced[texture].mean() > 2 * plain[texture].mean()
    edge = plain > 1.0  # the IR step: the stronger source keeps its own scale there
    assert edge.any()
    torch.testing.assert_close(balanced[edge], plain[edge])
