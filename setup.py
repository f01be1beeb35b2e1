"""fusion_node: one ament_python package that colcon builds on a robot and pip installs elsewhere.

Runtime (node, replay, benchmark) needs numpy, OpenCV, ONNX Runtime and rosbags only; ROS 2 itself
comes from the robot's distribution (or from PyPI wheels through scripts/setup.sh). Training (torch)
is not part of it: training/pyproject.toml is its own distribution, with the fusion-train/-eval/
-export commands, which `scripts/setup.sh all` installs beside this one.
"""
from glob import glob

from setuptools import find_packages, setup

package_name = "fusion_node"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=["fusion_node", "fusion_node.*"]),
    package_data={
        "fusion_node": [
            "interfaces/vision_msgs/*.msg", "sample/*", "sample/ir/*", "sample/vi/*", "py.typed",
            "models/fusion_rt.onnx",  # the default model, a link to models/ in the checkout
            "config/fastdds_large_images.xml",  # the demo's DDS profile, a link to config/ likewise
        ],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.*ml") + glob("config/*.rviz")),
        ("share/" + package_name + "/models", glob("models/*.onnx") + glob("models/*.md")),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.21",
        "opencv-python-headless>=4.5",
        "onnxruntime>=1.16",
        "rosbags>=0.10",
        "tqdm",
        "pyyaml",
    ],
    extras_require={
        # osrf-pycommon: for the upstream launch sources the launch tests run (../shared/vendor).
        "dev": [
            "pytest", "ruff", "mypy", "onnx>=1.15", "pycocotools", "types-PyYAML", "types-tqdm",
            "osrf-pycommon",
        ],
    },
    zip_safe=True,
    maintainer="fusion_node maintainers",
    maintainer_email="maintainers@fusion-node.dev",
    description="Infrared + visible image fusion, detection and segmentation for ROS 2.",
    license="MIT",
    entry_points={
        "console_scripts": [
            "fusion_node = fusion_node.ros.node:main",
            "fusion-node = fusion_node.cli:main",
        ],
    },
)
