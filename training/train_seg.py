"""Train the segmentation head on the frozen detector's feature with box supervision, then evaluate.

``python -m training.train_seg [--config training/configs/segmentation/boxseg.yaml]`` builds
(or reuses) the box caches, trains the head, writes ``head.pt``, ``metrics.json`` and
``contact_sheet.png`` to the run folder. ``--boxes-only`` stops after the caches.

The detector is frozen, so its stride-4 feature of each training image is computed once and
kept (bfloat16); steps then cost only the head and the losses. No augmentation: a flipped or
rescaled image would need a new detector pass. Losses are computed at half the detector input
resolution (the head's logits upsampled ×2 from stride 4, boxes and guide scaled to match).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from tqdm import tqdm

from fusion_node.pipeline.pair_files import ImagePair
from training.checkpoint import save_checkpoint
from training.config import ConfigError
from training.data.boxcache import (
    Boxes,
    build_box_caches,
    detect_pair,
    ground_truth,
    onnx_detector,
    weights_sha256,
)
from training.data.datasets import PairDataset
from training.data.errors import DataError
from training.data.sample import Pair
from training.data.split import open_labelled, split_indices
from training.data.transforms import resize
from training.evaluate import model_fuser
from training.losses.boxseg import (
    LOSS_STRIDE,
    BoxSegLossConfig,
    box_seg_loss,
    lab_ir_guide,
    similar_edges,
    warm_prior,
)
from training.losses.errors import LossError
from training.metrics.boxseg import box_mask, matched_boxes
from training.metrics.errors import MetricsError
from training.models.centernet import INPUT_MULTIPLE, ROAD_CLASSES, CenterNet, load_centernet
from training.models.seg_classes import SEG_CLASSES
from training.models.seghead import DetectorWithSeg, SegHead, SegHeadConfig
from training.paths import data_path
from training.seg_config import DEFAULT_CONFIG, SegConfig, SegTrainConfig, load_seg_config
from training.seg_eval import Predictor, contact_sheet, evaluate


@dataclass(frozen=True)
class Example:
    """One training pair, ready for the head: the frozen feature and the loss targets."""

    feature: torch.Tensor  # [128,H/4,W/4] bfloat16
    boxes: torch.Tensor  # [M,4] in loss pixels (H/2 × W/2)
    classes: torch.Tensor  # [M] SEG_CLASSES ids
    edges: torch.Tensor  # [8,H/2,W/2] bool: similar neighbours in the Lab + IR guide
    warm: torch.Tensor  # [H/2,W/2] IR warmth


def input_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(height, width) for the detector: long side ≈ ``long_side``, both multiples of 32 (mild stretch)."""
    scale = long_side / max(size)
    height, width = (max(INPUT_MULTIPLE, round(s * scale / INPUT_MULTIPLE) * INPUT_MULTIPLE) for s in size)
    return height, width


def detector_input(pair: Pair) -> torch.Tensor:
    """[1,3,H,W] RGB 0..255 of the pair's visible image (BGR 0..1)."""
    rgb = pair.visible[..., ::-1] * 255.0
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()


@torch.no_grad()
def prepare(
    pair: Pair, boxes: Boxes, detector: CenterNet, long_side: int, loss_cfg: BoxSegLossConfig
) -> Example:
    """Resize the pair (and its cached boxes) to the detector input, keep the feature and the targets."""
    pair = resize(pair.with_(boxes=boxes.boxes, labels=boxes.classes), input_size(pair.size, long_side))
    feature = detector.features(detector_input(pair).contiguous(memory_format=torch.channels_last))[0]
    h, w = pair.size[0] // LOSS_STRIDE, pair.size[1] // LOSS_STRIDE
    small = resize(pair, (h, w))
    ir = torch.from_numpy(small.ir)[None, None]
    guide = lab_ir_guide(torch.from_numpy(small.visible.transpose(2, 0, 1))[None], ir)
    return Example(
        feature.to(torch.bfloat16),
        torch.from_numpy(small.boxes),
        torch.from_numpy(small.labels),
        similar_edges(guide, loss_cfg)[0],
        warm_prior(ir, loss_cfg)[0],
    )


def load_pairs(
    cfg: SegConfig, caches: dict[str, dict[str, Boxes]]
) -> tuple[list[tuple[Pair, Boxes]], list[Pair]]:
    """(training pairs with their cached boxes, held-out evaluation pairs with their GT boxes);
    with ``train.image: fused`` the pairs' visible image is replaced by the fused one."""
    fuse = model_fuser(data_path(cfg.train.fusion_model)) if cfg.train.image == "fused" else None
    train, held_out = [], []
    for spec in cfg.datasets:
        dataset = open_labelled(spec)
        if (spec.role == "eval" or spec.eval_names) and not spec.labelled:
            raise DataError(f"{spec.name}: evaluation pairs need GT boxes; use a labelled dataset")
        evaluation = set(split_indices(spec, dataset, "eval"))
        for i, entry in enumerate(tqdm(dataset.entries, desc=f"pairs {spec.name}", unit="pair")):
            pair = dataset.load(i)
            if fuse is not None:
                fused = fuse(ImagePair(entry.name, entry.ir, entry.vi)).astype(np.float32) / 255.0
                pair = pair.with_(visible=fused)
            if i in evaluation:
                held_out.append(pair)
            else:
                train.append((pair, caches[spec.name][pair.name]))
    return train, held_out


def head_predictor(model: DetectorWithSeg, long_side: int) -> Predictor:
    """Pair → predicted ids at the pair's size (the detector input resized as in training)."""

    @torch.no_grad()
    def predict(pair: Pair) -> np.ndarray:
        resized = resize(pair, input_size(pair.size, long_side))
        _, logits = model(detector_input(resized).contiguous(memory_format=torch.channels_last))
        ids = logits[0].argmax(0).to(torch.uint8).numpy()
        return cv2.resize(ids, (pair.size[1], pair.size[0]), interpolation=cv2.INTER_NEAREST)

    return predict


def box_predictor(cfg: SegConfig) -> Predictor:
    """Baseline without a head: the detector's boxes on the pair, painted as a mask."""
    detector = onnx_detector(cfg.detector)

    def predict(pair: Pair) -> np.ndarray:
        found = detect_pair(detector, pair, cfg.detector)
        return box_mask(found.boxes, found.classes, pair.size)

    return predict


def detector_recall(cfg: SegConfig) -> list[str]:
    """Table rows: recall at IoU 0.5 of the labelled datasets' GT boxes by the detector's boxes
    on each choice of inputs (what ``detector.inputs`` is chosen by)."""
    detector = onnx_detector(cfg.detector)
    pairs = [p for spec in cfg.datasets if spec.labelled for p in _pairs(open_labelled(spec))]
    rows = ["| detector input | recall | detections |", "|---|---|---|"]
    for inputs in (["visible"], ["ir"], ["visible", "ir"]):
        settings = dataclasses.replace(cfg.detector, inputs=inputs)
        hits = total = detections = 0
        for pair in tqdm(pairs, desc=f"recall {'+'.join(inputs)}", unit="pair"):
            gt, found = ground_truth(pair), detect_pair(detector, pair, settings)
            hits += matched_boxes(gt.boxes, gt.classes, found.boxes, found.classes)
            total, detections = total + len(gt.classes), detections + len(found.classes)
        rows.append(f"| {' + '.join(inputs)} | {hits / max(total, 1):.3f} ({hits}/{total}) | {detections} |")
    return rows


def _pairs(dataset: PairDataset) -> list[Pair]:
    return [dataset.load(i) for i in range(len(dataset))]


def train_head(
    run_cfg: SegTrainConfig, head_cfg: SegHeadConfig, loss_cfg: BoxSegLossConfig, examples: Sequence[Example]
) -> tuple[SegHead, list[dict[str, float]]]:
    """The head trained for ``run_cfg.steps`` steps on batches of one input size; the loss log."""
    torch.manual_seed(run_cfg.seed)
    rng = np.random.default_rng(run_cfg.seed)
    head = SegHead(head_cfg)
    optim = torch.optim.AdamW(head.parameters(), lr=run_cfg.lr, weight_decay=run_cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optim, run_cfg.steps)
    buckets: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        buckets[tuple(ex.feature.shape)].append(i)
    keys = list(buckets)
    weights = np.array([len(buckets[k]) for k in keys], float)
    log: list[dict[str, float]] = []
    for step in tqdm(range(1, run_cfg.steps + 1), desc="seg head", unit="step"):
        bucket = buckets[keys[rng.choice(len(keys), p=weights / weights.sum())]]
        batch = [examples[i] for i in rng.choice(bucket, min(run_cfg.batch_size, len(bucket)), replace=False)]
        warm = torch.stack([ex.warm for ex in batch])
        logits = head(torch.stack([ex.feature for ex in batch]).float(), (warm.shape[-2], warm.shape[-1]))
        losses = box_seg_loss(
            logits,
            [ex.boxes for ex in batch],
            [ex.classes for ex in batch],
            torch.stack([ex.edges for ex in batch]),
            warm,
            loss_cfg,
        )
        optim.zero_grad(set_to_none=True)
        losses["total"].backward()
        optim.step()
        schedule.step()
        if step % run_cfg.log_interval == 0 or step == 1:
            log.append({"step": step, **{k: float(v.detach()) for k, v in losses.items()}})
            tqdm.write(
                f"step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in log[-1].items() if k != "step")
            )
    return head, log


def _sha256(path: str) -> str:
    return hashlib.sha256(data_path(path).read_bytes()).hexdigest()


def run(cfg: SegConfig, *, rebuild_boxes: bool = False, boxes_only: bool = False) -> dict[str, object]:
    """Caches → features → training → checkpoint → evaluation; returns what metrics.json holds."""
    torch.set_num_threads(cfg.train.threads)
    caches = build_box_caches(cfg.datasets, cfg.detector, rebuild=rebuild_boxes)
    if boxes_only:
        return {}
    train_pairs, held_out = load_pairs(cfg, caches)
    detector = load_centernet(cfg.detector.weights, ROAD_CLASSES)
    detector.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # valid; not in the stubs
    examples = [
        prepare(p, b, detector, cfg.train.long_side, cfg.loss) for p, b in tqdm(train_pairs, desc="features")
    ]
    head, log = train_head(cfg.train, cfg.head, cfg.loss, examples)
    out = data_path(cfg.train.out_dir)
    save_checkpoint(
        out / "head.pt",
        {
            "head": head.state_dict(),
            "classes": list(SEG_CLASSES),
            "detector_sha256": weights_sha256(cfg.detector.weights),
            "config": dataclasses.asdict(cfg),
            "fusion_model_sha256": _sha256(cfg.train.fusion_model) if cfg.train.image == "fused" else None,
            "steps": cfg.train.steps,
        },
    )
    model = DetectorWithSeg(detector, head).eval()
    predict = head_predictor(model, cfg.train.long_side)
    results: dict[str, object] = {
        "supervision": "boxes only (no mask labels); evaluation on held-out pairs' GT boxes",
        "image": cfg.train.image,
        "train_pairs": len(train_pairs),
        "eval_pairs": [p.name for p in held_out],
        "head": evaluate(predict, held_out),
        "detector_boxes_painted": evaluate(box_predictor(cfg), held_out),
        "loss_log": log,
    }
    (out / "metrics.json").write_text(json.dumps(results, indent=1))
    contact_sheet(predict, held_out, out / "contact_sheet.png")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--steps", type=int, help="override train.steps")
    parser.add_argument("--out", help="override train.out_dir")
    parser.add_argument("--rebuild-boxes", action="store_true", help="rebuild every box cache")
    parser.add_argument("--boxes-only", action="store_true", help="only build the box caches")
    parser.add_argument(
        "--detector-recall", action="store_true", help="print the detector's GT-box recall per input choice"
    )
    args = parser.parse_args(argv)
    try:
        cfg = load_seg_config(data_path(args.config))
        if args.steps is not None:
            cfg.train.steps = args.steps
        if args.out is not None:
            cfg.train.out_dir = args.out
        if args.detector_recall:
            print("\n".join(detector_recall(cfg)))
            return 0
        results = run(cfg, rebuild_boxes=args.rebuild_boxes, boxes_only=args.boxes_only)
    except (ConfigError, DataError, LossError, MetricsError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    for name in ("head", "detector_boxes_painted"):
        if name in results:
            print(name, json.dumps(results[name], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
