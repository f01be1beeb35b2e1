"""Recover a fusion-export-able checkpoint from an exported model's fusion weights.

The realtime fusion net has no BatchNorm, so the exporter writes its weights unchanged as ONNX
initializers named ``fusion.<state_dict key>``; this reads them back (exactly) with the training
config they were trained with. Used once, to re-export the shipped model with the pretrained
detector when its training checkpoint (runs/, git-ignored) was gone (models/README.md):

    python scripts/checkpoint_from_onnx.py --onnx OLD.onnx \
        --config training/configs/realtime_cpu_fusion_only.yaml --out runs/recovered/ckpt.pt

``--seg-head-out`` also writes the model's SegHead (initializers ``segmenter.<key>``, no BatchNorm
either) as a ``head.pt`` that ``fusion-export --seg-head`` takes, so a new fusion net can be
exported with the shipped head (its config: ``--seg-config``, the one it was trained with).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper

from training.checkpoint import save_checkpoint
from training.config import load_config, to_dict
from training.models.fusion import FusionNetConfig, build_fusion_net
from training.models.seg_classes import SEG_CLASSES
from training.models.seghead import SegHead
from training.seg_config import load_seg_config

PREFIX = "fusion."
SEG_PREFIX = "segmenter."
SEG_CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "segmentation" / "boxseg.yaml"


def _weights(model: onnx.ModelProto, prefix: str) -> dict[str, torch.Tensor]:
    """The initializers named ``prefix<key>`` as a state dict keyed ``<key>`` (exact copies)."""
    return {
        init.name[len(prefix) :]: torch.from_numpy(numpy_helper.to_array(init).copy())
        for init in model.graph.initializer
        if init.name.startswith(prefix)
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, required=True, help="an exported contract model")
    parser.add_argument("--config", type=Path, required=True, help="the YAML it was trained with")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seg-head-out", type=Path, help="also write the model's SegHead as this head.pt")
    parser.add_argument("--seg-config", type=Path, default=SEG_CONFIG, help="the head's train_seg YAML")
    args = parser.parse_args()
    model = onnx.load(str(args.onnx))
    meta = {p.key: p.value for p in model.metadata_props}
    config = to_dict(load_config(args.config))
    fusion = build_fusion_net(FusionNetConfig(**config["fusion_net"]))
    weights = _weights(model, PREFIX)
    fusion.load_state_dict(weights, strict=True)  # every key, every shape, or an error
    described = re.search(r"(\d+) steps.*val metrics (\{.*\})", meta.get("description", ""))
    save_checkpoint(
        args.out,
        {
            "config": config,
            "step": int(described.group(1)) if described else 0,
            "models": {"fusion": fusion.state_dict(), "discriminator": None, "semantic": None},
            "trained": {"detection": False, "segmentation": False},
            "class_names": json.loads(meta["class_names"]),
            "seg_class_names": config["seg_class_names"],  # training's; the graph's may be the head's
            "metrics": json.loads(described.group(2)) if described else {},
        },
    )
    print(f"wrote {args.out}: {len(weights)} fusion tensors from {args.onnx}")
    if args.seg_head_out is not None:
        seg_cfg = load_seg_config(args.seg_config)
        head = SegHead(seg_cfg.head)
        head.load_state_dict(_weights(model, SEG_PREFIX), strict=True)
        config = dataclasses.asdict(seg_cfg)
        save_checkpoint(
            args.seg_head_out, {"head": head.state_dict(), "classes": list(SEG_CLASSES), "config": config}
        )
        print(f"wrote {args.seg_head_out}: the seg head of {args.onnx}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
