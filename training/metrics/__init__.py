"""Evaluation metrics: fusion quality (reference-matched), detection mAP, segmentation IoU."""
