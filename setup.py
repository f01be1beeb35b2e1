"""fusion_node: one ament_python package that colcon builds on a robot and pip installs elsewhere.

Runtime (node, replay, benchmarks) needs numpy, OpenCV, ONNX Runtime and rosbags only; ROS 2 itself
comes from the robot's distribution (or from PyPI wheels through scripts/setup.sh). Training is the
[train] extra: it pins torch so pip takes the CPU wheel instead of a multi-GB CUDA build.
"""
from glob import glob

from setuptools import find_packages, setup

package_name = "fusion_node"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=["fusion_node", "fusion_node.*", "training", "training.*"]),
    package_data={
        "fusion_node": [
            "interfaces/vision_msgs/*.msg", "sample/*", "sample/ir/*", "sample/vi/*", "py.typed",
            "models/fusion_rt.onnx",  # the default model, a link to models/ in the checkout
        ],
        "training": ["configs/*.yaml"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.rviz")),
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
        "train": ["torch==2.13.0", "onnx>=1.15", "tensorboard", "pycocotools"],
        "dev": ["pytest", "ruff", "mypy", "onnx>=1.15", "pycocotools", "types-PyYAML", "types-tqdm"],
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
            "fusion-train = training.train:main",
            "fusion-eval = training.evaluate:main",
            "fusion-export = training.export:main",
        ],
    },
)
