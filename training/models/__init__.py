"""Networks: fusion (upper level), discriminator and multi-task semantic net (lower level)."""
