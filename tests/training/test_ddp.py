"""Two-process data parallel training (gloo on CPU): different data shards, identical replicas."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from training.checkpoint import load_checkpoint
from training.config import load_config
from training.train import CKPT_NAME, train

TINY = Path(__file__).resolve().parents[2] / "training" / "configs" / "tiny.yaml"
WORLD = 2


def _worker(rank: int, port: int, overrides: list[str], out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(WORLD),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    result = train(load_config(TINY, overrides))
    # Parameters only: BatchNorm running stats are per-rank estimates (rank 0's are checkpointed).
    models = {
        name: {k: p.detach() for k, p in net.named_parameters()}
        for name, net in result.models.items()
        if net is not None
    }
    torch.save({"models": models, "history": result.history}, Path(out) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_ranks_train_on_different_shards_and_stay_identical(data_dir: Path, tmp_path: Path) -> None:
    root, m3fd = (data_dir / "roadscene").resolve(), (data_dir / "m3fd").resolve()
    overrides = [
        f"data.fusion_train=[{{kind: paired, root: {root}}}]",
        f"train.out_dir={tmp_path / 'run'}",
        f"data.semantic_train=[{{kind: m3fd, root: {m3fd}, split: train}}]",
        "train.batch_size=2",
        "semantic_net.width=8",
        "semantic_net.max_width=16",
        "semantic_net.neck_width=16",
        "semantic_net.seg_width=8",
        "train.max_steps=3",
        "train.eval_images=1",
        "data.crop_size=[48, 48]",
        "bilevel.aggregation=random",
    ]
    mp.spawn(_worker, args=(_free_port(), overrides, str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    # Different shards: the per-rank fusion losses (computed before the gradient mean) differ.
    assert ranks[0]["history"][0]["fusion/total"] != ranks[1]["history"][0]["fusion/total"]
    # Same random aggregation weights on both ranks (identically seeded generator), not constant.
    weights = [[h["semantic/weight"] for h in rank["history"]] for rank in ranks]
    assert weights[0] == weights[1] and len(set(weights[0])) == 3
    assert set(ranks[0]["models"]) == {"fusion", "discriminator", "semantic"}
    for name, state in ranks[0]["models"].items():
        for key, value in state.items():
            assert torch.equal(value, ranks[1]["models"][name][key]), f"{name}.{key} differs between ranks"
    # Rank 0 wrote the checkpoint, with the replicated parameters.
    ckpt = load_checkpoint(tmp_path / "run" / CKPT_NAME)
    assert ckpt["step"] == 3 and len(ckpt["rng"]["ranks"]) == WORLD
    assert torch.equal(ckpt["models"]["fusion"]["out.weight"], ranks[0]["models"]["fusion"]["out.weight"])
