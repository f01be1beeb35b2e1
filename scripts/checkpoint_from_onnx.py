"""Recover a fusion-export-able checkpoint from an exported model's fusion weights.

The realtime fusion net has no BatchNorm, so the exporter writes its weights unchanged as ONNX
initializers named ``fusion.<state_dict key>``; this reads them back (exactly) with the training
config they were trained with. Used once, to re-export the shipped model with the pretrained
detector when its training checkpoint (runs/, git-ignored) was gone (models/README.md):

    python scripts/checkpoint_from_onnx.py --onnx OLD.onnx \
        --config training/configs/realtime_cpu_fusion_only.yaml --out runs/recovered/ckpt.pt
"""

from __future__ import annotations

import argparse
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

PREFIX = "fusion."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, required=True, help="an exported contract model")
    parser.add_argument("--config", type=Path, required=True, help="the YAML it was trained with")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model = onnx.load(str(args.onnx))
    meta = {p.key: p.value for p in model.metadata_props}
    config = to_dict(load_config(args.config))
    fusion = build_fusion_net(FusionNetConfig(**config["fusion_net"]))
    weights = {
        init.name[len(PREFIX) :]: torch.from_numpy(numpy_helper.to_array(init).copy())
        for init in model.graph.initializer
        if init.name.startswith(PREFIX)
    }
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
            "seg_class_names": json.loads(meta["seg_class_names"]),
            "metrics": json.loads(described.group(2)) if described else {},
        },
    )
    print(f"wrote {args.out}: {len(weights)} fusion tensors from {args.onnx}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
