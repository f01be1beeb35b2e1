"""No-reference fusion metrics for a fused grayscale image against its IR and visible sources.

Every metric follows the conventions of the field's widely used MATLAB evaluation code
(Linfeng-Tang/Image-Fusion, "General Evaluation Metric", ``analysis_Reference.m``), quirks included,
so our numbers are comparable with published tables; each function's docstring states its
convention. Inputs are uint8 H×W arrays. "Double" below means ``image / 255`` (MATLAB ``im2double``),
"0..255" means the uint8 values as float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from training.metrics.errors import MetricsError

# MATLAB rgb2gray weights (R, G, B), used to read colour images exactly as the reference did.
_GRAY_RGB = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def to_gray(image: np.ndarray) -> np.ndarray:
    """BGR (H×W×3) or gray (H×W) uint8 to gray uint8, as MATLAB ``rgb2gray`` (round half up)."""
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[2] != 3:
        raise MetricsError(f"expected an H×W or H×W×3 image, got shape {image.shape}: pass BGR or gray")
    gray = image[..., ::-1].astype(np.float64) @ _GRAY_RGB
    return np.clip(np.floor(gray + 0.5), 0, 255).astype(np.uint8)


def read_gray(path: Path) -> np.ndarray:
    """Read an image file as gray uint8 with :func:`to_gray`."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise MetricsError(f"cannot read image {path}: check the path and that it is a PNG/JPEG")
    return to_gray(image)


def _double(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) / 255.0


def _hist_entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def entropy(fused: np.ndarray) -> float:
    """EN: Shannon entropy in bits of the 256-bin histogram of the uint8 image (MATLAB ``entropy``)."""
    return _hist_entropy(np.bincount(fused.ravel(), minlength=256))


def standard_deviation(fused: np.ndarray) -> float:
    """SD on the reference's uint8 arithmetic: ``sqrt(sum((F - mean)^2) / MN)`` with F uint8.

    MATLAB keeps ``F - mean`` in uint8 (rounded half away from zero, negatives saturate to 0) and
    ``.^2`` saturates at 255, so the value is bounded by sqrt(255) ≈ 16 and is *not* the usual SD
    (which would be ~40 on 0..255). Reproduced because published tables use it.
    """
    f = fused.astype(np.float64)
    diff = np.clip(np.floor(f - f.mean() + 0.5), 0, 255)
    return float(np.sqrt(np.minimum(diff * diff, 255).sum() / f.size))


def spatial_frequency(fused: np.ndarray) -> float:
    """SF on the double image: ``sqrt(RF^2 + CF^2)``, RF/CF = RMS of vertical/horizontal differences."""
    f = _double(fused)
    rf = np.mean(np.diff(f, axis=0) ** 2)
    cf = np.mean(np.diff(f, axis=1) ** 2)
    return float(np.sqrt(rf + cf))


def average_gradient(fused: np.ndarray) -> float:
    """AG on 0..255: mean of ``sqrt((gx^2 + gy^2) / 2)`` with MATLAB ``gradient`` (central differences,
    one-sided at the border), summed over all pixels and divided by (H-1)(W-1)."""
    f = fused.astype(np.float64)
    gy, gx = np.gradient(f)
    return float(np.sqrt((gx * gx + gy * gy) / 2).sum() / ((f.shape[0] - 1) * (f.shape[1] - 1)))


def _joint_entropy(a: np.ndarray, b: np.ndarray) -> float:
    # The reference indexes its 256×256 histogram with uint8 ``value + 1``, which saturates, so grey
    # levels 254 and 255 share one bin in the joint histogram (but not in the marginals).
    a = np.minimum(a.ravel(), 254).astype(np.int64)
    b = np.minimum(b.ravel(), 254).astype(np.int64)
    return _hist_entropy(np.bincount(a * 256 + b, minlength=256 * 256))


def mutual_information(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """MI = MI(F, IR) + MI(F, VIS) in bits; 256-bin histograms of the uint8 images, log base 2,
    ``MI(F, X) = H(X) + H(F) - H(F, X)`` (joint histogram merges levels 254/255, as the reference)."""
    h_f = entropy(fused)
    return sum(entropy(x) + h_f - _joint_entropy(fused, x) for x in (ir, vis))


def _valid_filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(kernel, image, 'valid')`` for an odd, symmetric kernel."""
    r = kernel.shape[0] // 2
    out = cv2.filter2D(image, cv2.CV_64F, kernel, borderType=cv2.BORDER_CONSTANT)
    return out[r : out.shape[0] - r, r : out.shape[1] - r]


def _gaussian(size: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``: separable and normalised to sum 1."""
    g = cv2.getGaussianKernel(size, sigma, cv2.CV_64F)
    return g @ g.T


def _vifp(ref: np.ndarray, dist: np.ndarray) -> float:
    # LIVE's pixel-domain multi-scale VIF (vifp_mscale.m), 4 scales, sigma_nsq = 2.
    sigma_nsq, eps = 2.0, 1e-10
    num = den = 0.0
    ref, dist = ref.astype(np.float64), dist.astype(np.float64)
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = _gaussian(n, n / 5)
        if scale > 1:
            ref = _valid_filter(ref, win)[::2, ::2]
            dist = _valid_filter(dist, win)[::2, ::2]
        mu1, mu2 = _valid_filter(ref, win), _valid_filter(dist, win)
        # The reference passes uint8 images, so at scale 1 its products ref.*ref etc. saturate at 255.
        cap = 255.0 if scale == 1 else np.inf
        s1 = np.maximum(_valid_filter(np.minimum(ref * ref, cap), win) - mu1 * mu1, 0)
        s2 = np.maximum(_valid_filter(np.minimum(dist * dist, cap), win) - mu2 * mu2, 0)
        s12 = _valid_filter(np.minimum(ref * dist, cap), win) - mu1 * mu2
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        flat1 = s1 < eps
        g[flat1], sv[flat1], s1[flat1] = 0, s2[flat1], 0
        flat2 = s2 < eps
        g[flat2], sv[flat2] = 0, 0
        neg = g < 0
        sv[neg], g[neg] = s2[neg], 0
        sv = np.maximum(sv, eps)
        num += np.log10(1 + g * g * s1 / (sv + sigma_nsq)).sum()
        den += np.log10(1 + s1 / sigma_nsq).sum()
    return float(num / den)


def visual_information_fidelity(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """VIF = VIFp(IR, F) + VIFp(VIS, F): LIVE's multi-scale *pixel-domain* VIF (``vifp_mscale.m``) on
    0..255, Gaussian windows 17/9/5/3 with sigma = size/5, 'valid' filtering, 2× decimation,
    sigma_nsq = 2, log10 information ratio summed over the 4 scales.

    Reference quirk reproduced: the second-moment images of scale 1 are uint8 products, saturated at
    255, so that scale's variances are mostly clipped to 0 and it contributes little.
    """
    return _vifp(ir, fused) + _vifp(vis, fused)


def _corr2(a: np.ndarray, b: np.ndarray) -> float:
    """MATLAB ``corr2``: Pearson correlation over all pixels."""
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def correlation_coefficient(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """CC = mean(corr(IR, F), corr(VIS, F)) on the double images."""
    f = _double(fused)
    return (_corr2(_double(ir), f) + _corr2(_double(vis), f)) / 2


def sum_correlation_differences(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """SCD (Aslantas & Bendes 2015) on the double images: ``corr(F - VIS, IR) + corr(F - IR, VIS)``."""
    f, a, b = _double(fused), _double(ir), _double(vis)
    return _corr2(f - b, a) + _corr2(f - a, b)


def mean_squared_error(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """MSE = mean(MSE(F, IR), MSE(F, VIS)) on the double (0..1) images."""
    f = _double(fused)
    return float((np.mean((f - _double(ir)) ** 2) + np.mean((f - _double(vis)) ** 2)) / 2)


def peak_signal_to_noise(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """PSNR = ``20 log10(255 / sqrt(MSE))`` with the 0..1 MSE above: the reference's peak of 255
    against a 0..1 error, which adds 48.13 dB to the textbook value. Reproduced for comparability."""
    return float(20 * np.log10(255 / np.sqrt(mean_squared_error(fused, ir, vis))))


# Sobel kernels of the reference (applied with conv2, i.e. true convolution).
_SOBEL_Y = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float64)
_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)


def _conv3_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB ``conv2(image, kernel, 'same')`` for a 3×3 kernel, zero padding, bit for bit.

    Hand-written instead of cv2.filter2D because Qabf branches on ``gx == 0``: on 0..1 images the
    last bits of a flat region's response depend on the summation order, and only MATLAB's
    (kernel taps in column-major order) reproduces the reference; OpenCV's order moves Qabf ~0.3 %.
    """
    h, w = image.shape
    padded = np.pad(image, 1)
    out = np.zeros_like(image)
    for q in range(3):
        for p in range(3):
            out = out + kernel[p, q] * padded[2 - p : 2 - p + h, 2 - q : 2 - q + w]
    return out


def _edges(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = _conv3_same(image, _SOBEL_X), _conv3_same(image, _SOBEL_Y)
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.where(gx == 0, np.pi / 2, np.arctan(gy / gx))
    return np.sqrt(gx * gx + gy * gy), angle


def _edge_preservation(g_src: np.ndarray, a_src: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    tg, kg, dg, ta, ka, da = 0.9994, -15.0, 0.5, 0.9879, -22.0, 0.8
    with np.errstate(divide="ignore", invalid="ignore"):
        # Reference quirk: where the strengths are equal the ratio is g_f itself, not 1.
        g = np.where(g_src > g_f, g_f / g_src, np.where(g_src == g_f, g_f, g_src / g_f))
    a = 1 - np.abs(a_src - a_f) / (np.pi / 2)
    return tg / (1 + np.exp(kg * (g - dg))) * ta / (1 + np.exp(ka * (a - da)))


def qabf(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """Qabf (Xydeas & Petrovic) on the double images: 3×3 Sobel with zero padding, orientation
    ``atan(gy/gx)`` (pi/2 where gx == 0), Tg=0.9994, kg=-15, Dg=0.5, Ta=0.9879, ka=-22, Da=0.8,
    weights = source gradient strengths (L = 1)."""
    g_f, a_f = _edges(_double(fused))
    num = den = 0.0
    for src in (ir, vis):
        g_s, a_s = _edges(_double(src))
        num += float((_edge_preservation(g_s, a_s, g_f, a_f) * g_s).sum())
        den += float(g_s.sum())
    return num / den


def _ssim(x: np.ndarray, y: np.ndarray) -> float:
    win = _gaussian(11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = x.astype(np.float64), y.astype(np.float64)
    mx, my = _valid_filter(x, win), _valid_filter(y, win)
    sxx = _valid_filter(x * x, win) - mx * mx
    syy = _valid_filter(y * y, win) - my * my
    sxy = _valid_filter(x * y, win) - mx * my
    ssim_map = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(ssim_map.mean())


def structural_similarity(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """SSIM = SSIM(F, IR) + SSIM(F, VIS) (the sum, as most IVIF papers report it; range 0..2).

    Each term is Wang et al.'s SSIM on 0..255: 11×11 Gaussian window with sigma 1.5, 'valid'
    region, K1 = 0.01, K2 = 0.03, L = 255, mean of the SSIM map. The reference CSVs have no SSIM
    (its ``mef_ssim`` variant is a different metric).
    """
    return _ssim(fused, ir) + _ssim(fused, vis)


_Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]

METRICS: dict[str, _Metric] = {
    "EN": lambda f, a, b: entropy(f),
    "SD": lambda f, a, b: standard_deviation(f),
    "SF": lambda f, a, b: spatial_frequency(f),
    "AG": lambda f, a, b: average_gradient(f),
    "MI": mutual_information,
    "SCD": sum_correlation_differences,
    "VIF": visual_information_fidelity,
    "Qabf": qabf,
    "SSIM": structural_similarity,
    "CC": correlation_coefficient,
    "PSNR": peak_signal_to_noise,
    "MSE": mean_squared_error,
}
"""Metric name → function(fused, ir, vis); the names are the reference CSVs' (``Metric_TNO__<NAME>.csv``)."""

LOWER_IS_BETTER = frozenset({"MSE"})

GOAL_METRICS = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM")
"""The nine the project's fusion goal counts (issue 8): a model should beat each baseline on most."""


def fusion_metrics(
    fused: np.ndarray, ir: np.ndarray, vis: np.ndarray, names: Sequence[str] | None = None
) -> dict[str, float]:
    """Compute fusion metrics of a fused image against its two sources.

    Args:
        fused: fused image, uint8 H×W (convert colour with :func:`to_gray`).
        ir: infrared source, uint8 H×W.
        vis: visible source, uint8 H×W.
        names: metrics to compute (keys of :data:`METRICS`); all by default.

    Returns:
        Metric name → value, in the order of ``names``.
    """
    for label, image in (("fused", fused), ("ir", ir), ("vis", vis)):
        if image.dtype != np.uint8 or image.ndim != 2:
            raise MetricsError(
                f"{label} must be a uint8 H×W image, got {image.dtype} {image.shape}: convert with to_gray"
            )
    if not fused.shape == ir.shape == vis.shape:
        raise MetricsError(
            f"image sizes differ (fused {fused.shape}, ir {ir.shape}, vis {vis.shape}): "
            "resize the fused image to the sources' size"
        )
    selected = list(METRICS) if names is None else list(names)
    unknown = [n for n in selected if n not in METRICS]
    if unknown:
        raise MetricsError(f"unknown metric(s) {unknown}: choose from {list(METRICS)}")
    return {n: METRICS[n](fused, ir, vis) for n in selected}
