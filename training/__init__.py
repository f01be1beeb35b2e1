"""Offline training, evaluation and export (torch)."""
