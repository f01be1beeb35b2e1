"""ROS 2 edge of fusion_node: the node, the demo and their message conversions (rclpy only here)."""
