"""The networks: colour conversion vs OpenCV, shapes/dtypes, complexity budgets, decode vs brute force."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from training.models.color import bgr_to_ycrcb, ycrcb_to_bgr
from training.models.complexity import count_macs, count_params, summarize
from training.models.decode import decode_detections, flatten_levels
from training.models.discriminator import Discriminator, DiscriminatorConfig
from training.models.errors import ModelConfigError
from training.models.fusion import FusionNetConfig, build_fusion_net
from training.models.semantic import SemanticNet, SemanticNetConfig
from training.paths import SHARED_DATA as DATA

ROADSCENE_VI = DATA / "roadscene" / "vi" / "FLIR_00006.jpg"


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> [1,3,H,W] float 0..1."""
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


@pytest.fixture(scope="module")
def real_bgr() -> np.ndarray:
    if not ROADSCENE_VI.is_file():
        pytest.skip(f"real data missing: {ROADSCENE_VI}")
    img = cv2.imread(str(ROADSCENE_VI), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_bgr_to_ycrcb_matches_opencv(real_bgr: np.ndarray) -> None:
    ours = bgr_to_ycrcb(_to_tensor(real_bgr))[0].permute(1, 2, 0).numpy()
    ref = cv2.cvtColor(real_bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2YCrCb)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_ycrcb_to_bgr_matches_opencv_and_round_trips(real_bgr: np.ndarray) -> None:
    x = _to_tensor(real_bgr)
    ycc = bgr_to_ycrcb(x)
    back = ycrcb_to_bgr(ycc)
    ref = cv2.cvtColor(ycc[0].permute(1, 2, 0).numpy(), cv2.COLOR_YCrCb2BGR)
    np.testing.assert_allclose(back[0].permute(1, 2, 0).numpy(), ref, atol=1e-5)
    # OpenCV's coefficients are rounded to 3 digits, so the round trip is within ~1e-3, not exact.
    assert (back - x).abs().max().item() < 2e-3


@pytest.mark.parametrize("arch", ["realtime", "fast", "paper"])
def test_fusion_net_shapes_range_and_gradients(arch: str) -> None:
    torch.manual_seed(0)
    net = build_fusion_net(FusionNetConfig(arch=arch, paper_width=8, paper_growth=4))
    ir, vis = torch.rand(2, 1, 37, 50), torch.rand(2, 1, 37, 50)  # odd size: no divisor needed
    out = net(ir, vis)
    assert out.shape == (2, 1, 37, 50) and out.dtype == torch.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("arch", ["realtime", "fast"])
def test_our_fusion_nets_start_as_their_output_forms_prior(arch: str) -> None:
    """The blend output starts as the mean of the sources, the additive one as their contrast sum."""
    ir, vis = torch.rand(2, 1, 64, 64), torch.rand(2, 1, 64, 64) * 0.5
    torch.testing.assert_close(build_fusion_net(FusionNetConfig(arch=arch))(ir, vis), (ir + vis) / 2)
    additive = build_fusion_net(FusionNetConfig(arch=arch, output="additive"))
    for i in range(2):  # each image's own means
        expected = (ir[i] + vis[i] - (ir[i].mean() + vis[i].mean()) / 2).clamp(0.0, 1.0)
        torch.testing.assert_close(additive(ir, vis)[i], expected)


def test_fast_fusion_pixel_detail_and_padding() -> None:
    """The fast net works at 1/4 resolution yet sets single pixels; padding never shifts the image."""
    torch.manual_seed(0)
    cfg = FusionNetConfig(arch="fast")
    net = build_fusion_net(cfg)
    ir, vis = torch.rand(1, 1, 37, 50), torch.rand(1, 1, 37, 50)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    # A 4×4 block's pixels get different outputs beyond their inputs' mean: per-pixel maps.
    out = net(ir, vis)
    block = (out - (ir + vis) / 2)[0, 0, :4, :4]
    assert block.std() > 1e-3
    # Padding is at the bottom/right only: the output on the top-left 32×48 crop equals the full
    # output away from the crop's border by more than the receptive field (1 low-res px per conv).
    reach = cfg.fast_factor * (2 + 2 * cfg.fast_blocks)  # the stem's block + 1 px per 3×3 conv
    crop = net(ir[..., :32, :48], vis[..., :32, :48])
    torch.testing.assert_close(out[..., : 32 - reach, : 48 - reach], crop[..., : 32 - reach, : 48 - reach])


def test_fusion_complexity_budgets() -> None:
    x = torch.rand(1, 1, 480, 640)
    for arch in ("realtime", "fast"):
        assert count_macs(build_fusion_net(FusionNetConfig(arch=arch)), x, x) <= 1_000_000_000
    paper = build_fusion_net(FusionNetConfig(arch="paper"))
    assert 380_000 <= count_params(paper) <= 420_000
    # The paper net never downsamples, so its MACs scale exactly with pixels: count at 1/16 size.
    small = torch.rand(1, 1, 120, 160)
    assert count_macs(paper, small, small) * 16 > 100_000_000_000


def test_count_macs_counts_grouped_convs() -> None:
    dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
    full = torch.nn.Conv2d(8, 8, 3, padding=1)
    x = torch.rand(1, 8, 10, 10)
    assert count_macs(dw, x) == 8 * 100 * 9
    assert count_macs(full, x) == 8 * 100 * 9 * 8


def test_discriminator_two_heads() -> None:
    disc = Discriminator(DiscriminatorConfig(width=8, depth=2))
    out = disc(torch.rand(3, 1, 32, 48), torch.rand(3, 1, 32, 48))
    assert set(out) == {"ir", "vis"}
    assert out["ir"].shape == (3,) and out["vis"].shape == (3,)
    # Each head judges only its own input.
    x_vis = torch.rand(3, 1, 32, 48, requires_grad=True)
    disc(torch.rand(3, 1, 32, 48), x_vis)["ir"].sum().backward()
    assert x_vis.grad is None or x_vis.grad.abs().sum() == 0


def test_bad_configs_raise() -> None:
    with pytest.raises(ModelConfigError, match="arch"):
        FusionNetConfig(arch="huge")  # type: ignore[arg-type]
    with pytest.raises(ModelConfigError, match="widths"):
        FusionNetConfig(widths=(8, 8))  # type: ignore[arg-type]
    with pytest.raises(ModelConfigError, match="output"):
        FusionNetConfig(output="sum")  # type: ignore[arg-type]
    with pytest.raises(ModelConfigError, match="paper net"):
        FusionNetConfig(arch="paper", output="additive")


def _reference_nms(
    boxes: torch.Tensor, scores: torch.Tensor, thr: float, iou_thr: float, k: int
) -> list[tuple[int, int, float]]:
    """Brute force: per class, greedy NMS with plain loops; then all classes by score, top k."""
    kept: list[tuple[int, int, float]] = []  # (box index, class, score)
    for c in range(scores.shape[1]):
        cand = [i for i in range(len(boxes)) if scores[i, c] > thr]
        chosen: list[int] = []
        for i in sorted(cand, key=lambda i: -scores[i, c].item()):
            if all(_iou(boxes[i], boxes[j]) <= iou_thr for j in chosen):
                chosen.append(i)
        kept += [(i, c, scores[i, c].item()) for i in chosen]
    return sorted(kept, key=lambda t: -t[2])[:k]


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    w = max(0.0, min(a[2], b[2]).item() - max(a[0], b[0]).item())
    h = max(0.0, min(a[3], b[3]).item() - max(a[1], b[1]).item())
    area = lambda x: ((x[2] - x[0]) * (x[3] - x[1])).item()  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


def test_decode_matches_brute_force_nms() -> None:
    torch.manual_seed(1)
    strides = [8, 16]
    # Random head outputs on a 32×48 image: 4×6 + 2×3 cells, 3 classes; boxes overlap a lot.
    out = {
        "cls": [torch.randn(2, 3, 4, 6) * 2, torch.randn(2, 3, 2, 3) * 2],
        "reg": [torch.rand(2, 4, 4, 6) * 3, torch.rand(2, 4, 2, 3) * 2],
        "ctr": [torch.randn(2, 1, 4, 6), torch.randn(2, 1, 2, 3)],
    }
    boxes, scores, classes, num = decode_detections(
        out, strides, score_threshold=0.3, nms_iou_threshold=0.5, max_detections=15
    )
    assert boxes.shape == (2, 15, 4) and scores.shape == (2, 15) and classes.dtype == torch.int64
    all_boxes, cls, ctr = flatten_levels(out, strides)
    all_scores = torch.sqrt(torch.sigmoid(cls) * torch.sigmoid(ctr)[..., None])
    for n in range(2):
        ref = _reference_nms(all_boxes[n], all_scores[n], 0.3, 0.5, 15)
        assert int(num[n]) == len(ref) > 3
        torch.testing.assert_close(scores[n, : len(ref)], torch.tensor([s for _, _, s in ref]))
        torch.testing.assert_close(boxes[n, : len(ref)], all_boxes[n, [i for i, _, _ in ref]])
        assert classes[n, : len(ref)].tolist() == [c for _, c, _ in ref]
        assert (scores[n, len(ref) :] == 0).all() and (classes[n, len(ref) :] == 0).all()


def test_semantic_net_outputs() -> None:
    cfg = SemanticNetConfig(num_classes=4, num_seg_classes=5, width=8, neck_width=16, seg_width=8)
    net = SemanticNet(cfg).eval()
    x = torch.rand(2, 3, 96, 128)
    out = net(x)
    assert net.strides == [8, 16, 32]
    for key, ch in (("cls", 4), ("reg", 4), ("ctr", 1)):
        shapes = [tuple(t.shape) for t in out[key]]
        assert shapes == [(2, ch, 96 // s, 128 // s) for s in net.strides]
    assert all((r >= 0).all() for r in out["reg"])
    assert out["seg"].shape == (2, 5, 96, 128)
    # Prior 0.01 on the classification bias: untrained foreground probability is about 1 %.
    assert abs(torch.sigmoid(out["cls"][0]).mean().item() - 0.01) < 0.01
    with pytest.raises(ModelConfigError, match="strides"):
        SemanticNetConfig(strides=(4, 8))


def test_summarize_lists_every_net() -> None:
    rows = summarize(FusionNetConfig(), DiscriminatorConfig(), SemanticNetConfig(), size=(96, 128))
    assert [r["name"] for r in rows] == ["fusion (realtime)", "discriminator", "semantic"]
    assert all(r["params"] > 0 and r["gmac"] > 0 for r in rows)
