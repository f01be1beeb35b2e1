"""Infrared + visible fusion, detection and segmentation for ROS 2 (runtime side: no torch)."""
