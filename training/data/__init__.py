"""Datasets (paired folders, MSRS, M3FD, LLVIP), joint augmentation and collate for training."""

from training.data.collate import collate
from training.data.config import DataConfig, DatasetSpec, build_datasets
from training.data.datasets import LLVIPDataset, M3FDDataset, MSRSDataset, PairDataset, PairedFolderDataset
from training.data.errors import DataError
from training.data.sample import Pair, to_sample
from training.data.transforms import EvalTransform, Photometric, TrainTransform, crop, hflip, resize

__all__ = [
    "DataConfig",
    "DataError",
    "DatasetSpec",
    "EvalTransform",
    "LLVIPDataset",
    "M3FDDataset",
    "MSRSDataset",
    "Pair",
    "PairDataset",
    "PairedFolderDataset",
    "Photometric",
    "TrainTransform",
    "build_datasets",
    "collate",
    "crop",
    "hflip",
    "resize",
    "to_sample",
]
