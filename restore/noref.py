"""Image quality without a reference: NIQE and BRISQUE, per face or per photo, so a collection
can be sorted by what needs a look. Lower is better for both.

* ``niqe``: the Natural Image Quality Evaluator (Mittal, Soundararajan, Bovik 2013), basicsr
  1.4.2's ``calculate_niqe`` (itself within 1e-6 of the official MATLAB code) on the Y channel
  of BT.601 YCbCr, 96 px blocks, the pristine model basicsr ships (``niqe_pris_params.npz``,
  read from the installed basicsr's folder). Evaluated here with basicsr's own float32 steps
  wherever they decide a sign or a table entry (its Y, its resize, its moments; flat areas and
  smooth gradients make coefficients of rounding residues), the rest at once per image: its
  gamma table once, not once per block; its 7x7 window separably; the table's argmin by search.
  Agreement: 5e-14 relative on the project's photos. CPU time, one thread: 95 ms for a 512 px
  face (basicsr: 270 ms), 0.63 s for a 2 MP photo (2.0 s).
  Range: about 2-4 for sharp, clean photos, 5-10 for blurred, noisy or JPEG-damaged ones,
  above 10 for heavy damage or flat, synthetic images; unbounded above.
* ``brisque``: the Blind/Referenceless Image Spatial Quality Evaluator (Mittal, Moorthy, Bovik
  2012) as the PyPI package ``brisque`` 0.2.0 computes it (36 MSCN features on rgb2gray at two
  scales, an epsilon-SVR with an RBF kernel), evaluated in numpy from the package's SVM and
  feature ranges, vendored as ``brisque_svm.npz`` (Apache-2.0, notice in
  ``brisque_svm.LICENSE``): the package itself needs libsvm and, on numpy 2, fails to score at
  all (its features are 1-element arrays that ``float()`` refuses). Range: roughly 0-100 (the
  DMOS scale of LIVE it was trained on); clean photos about 0-25, damaged ones 40-100; the SVR
  can go a little below 0 or above 100. Agreement with the package: 4e-11 on 42 photos. CPU
  time, one thread: 110 ms at 512 px (the package: 315 ms), 0.9 s at 2 MP (2.3 s).

Grey images: a 2-D array is scored as the RGB image with R = G = B (so a grey photo scores the
same whether it is stored grey or as RGB). Images too small to score give NaN, never an
exception, so a sortable column holds them (last): NIQE needs two 96 px blocks a side
(``NIQE_MIN_SIDE`` = 192 px on the shorter side; one block leaves no covariance to fit), BRISQUE
``BRISQUE_MIN_SIDE`` = 32 px. Flat images (no texture at all) are NaN as well. Small faces are
not upscaled to fit: upscaling adds the smoothness NIQE measures, so the number would describe
the resampler; the face pipeline scores its aligned crops (512 px), which always fit.
"""
from __future__ import annotations

import functools
import importlib.util
import math
import warnings
from pathlib import Path

import cv2
import numpy as np
from scipy import optimize, signal
from scipy.special import gamma

__all__ = ["BRISQUE_MIN_SIDE", "BRISQUE_MODEL", "NIQE_MIN_SIDE", "brisque", "niqe", "scores"]

NIQE_BLOCK = 96
NIQE_MIN_SIDE = 2 * NIQE_BLOCK
BRISQUE_MIN_SIDE = 32
BRISQUE_MODEL = Path(__file__).with_name("brisque_svm.npz")


def scores(rgb: np.ndarray) -> dict[str, float]:
    """``{"niqe": ..., "brisque": ...}`` for an RGB uint8 HxWx3 (or HxW grey) image."""
    return {"niqe": niqe(rgb), "brisque": brisque(rgb)}


def _rgb_uint8(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {rgb.dtype}")
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 RGB or HxW grey image, got shape {rgb.shape}")
    return rgb[..., :3]


# ---------------------------------------------------------------------------------- NIQE


@functools.lru_cache(maxsize=1)
def _niqe_model() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """basicsr's pristine model (mu, cov), the 7x7 window's 1-D factor (the window is a
    Gaussian: rank one), and the AGGD lookup table (gam, r_gam) of basicsr's estimate."""
    spec = importlib.util.find_spec("basicsr")  # finds the file; basicsr itself is not imported
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("NIQE reads basicsr's niqe_pris_params.npz: basicsr is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "metrics" / "niqe_pris_params.npz"
    with np.load(path) as p:
        mu, cov, window = p["mu_pris_param"], p["cov_pris_param"], p["gaussian_window"]
    u, s, _ = np.linalg.svd(window)
    factor = u[:, 0] * math.sqrt(s[0])
    factor = factor * np.sign(factor.sum())
    gam = np.arange(0.2, 10.001, 0.001)
    inv = np.reciprocal(gam)
    r_gam = np.square(gamma(inv * 2)) / (gamma(inv) * gamma(inv * 3))
    return mu, cov, factor, np.stack([gam, r_gam])


def _niqe_y(rgb: np.ndarray) -> np.ndarray:
    """basicsr's Y (MATLAB's rgb2ycbcr), with its float32 steps, rounded as it rounds."""
    img = rgb[..., ::-1].astype(np.float32) / np.float32(255.0)  # its BGR order: the sum's order
    y = np.dot(img, [24.966, 128.553, 65.481]) + 16.0
    y = (y / 255.0).astype(np.float32) * np.float32(255.0)
    return y.round().astype(np.float64)


def _imresize_half(img: np.ndarray) -> np.ndarray:
    """basicsr's MATLAB ``imresize(img, 0.5)`` itself (torch, float32, row by row: ~0.1 s for
    2 MP). A float64 evaluation of the same weights (sparse matrix products) was 10x faster but
    moved NIQE by up to 1e-3 on smooth gradients, where the coefficients are rounding residues
    and their signs follow the last bits of the resize."""
    from basicsr.utils.matlab_functions import imresize

    import gan  # noqa: F401  (the torchvision shim basicsr needs)

    return imresize(img.astype(np.float32), scale=0.5, antialiasing=True)


def _aggd(x: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """basicsr's ``estimate_aggd_param`` for each row of ``x`` (float32): (alpha, beta_l,
    beta_r). The moments as basicsr takes them, in float32 on the selected values (the table's
    argmin is decided by their last bits); the argmin itself, over basicsr's gamma table, is a
    search in the (increasing) table and a look at both neighbours, not a pass over 9801
    values per block. Rows with no negative or no positive value give NaN betas, as there."""
    gam, r_gam = table
    left, right = np.empty(len(x), np.float32), np.empty(len(x), np.float32)
    rnorm = np.empty(len(x))
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of no values: NaN, as in basicsr
        for i, block in enumerate(x):
            left[i] = np.sqrt(np.mean(block[block < 0] ** 2))
            right[i] = np.sqrt(np.mean(block[block > 0] ** 2))
            g = left[i] / right[i]
            rhat = np.mean(np.abs(block)) ** 2 / np.mean(block**2)
            rnorm[i] = (rhat * (g**3 + 1) * (g + 1)) / ((g**2 + 1) ** 2)
    hi = np.clip(np.searchsorted(r_gam, rnorm), 1, len(r_gam) - 1)
    lo = hi - 1
    pick = np.where((r_gam[hi] - rnorm) ** 2 < (r_gam[lo] - rnorm) ** 2, hi, lo)
    pick = np.where(np.isnan(rnorm), 0, pick)  # np.argmin over all-NaN picks the first
    alpha = gam[pick]
    k = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left * k, right * k


def _niqe_features(mscn: np.ndarray, block: int, table: np.ndarray) -> np.ndarray:
    """The 18 features of every ``block`` x ``block`` block of ``mscn`` (rows: blocks)."""
    nh, nw = mscn.shape[0] // block, mscn.shape[1] // block
    blocks = mscn[:nh * block, :nw * block].reshape(nh, block, nw, block).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(nh * nw, block, block)
    alpha, bl, br = _aggd(blocks.reshape(len(blocks), -1), table)
    feats = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):  # products of neighbours, wrapped inside the block
        prod = blocks * np.roll(blocks, shift, axis=(1, 2))
        alpha, bl, br = _aggd(prod.reshape(len(prod), -1), table)
        feats += [alpha, (br - bl) * gamma(2 / alpha) / gamma(1 / alpha), bl, br]
    return np.stack(feats, 1)


def niqe(rgb: np.ndarray) -> float:
    """NIQE of an RGB uint8 HxWx3 (or HxW grey) image; lower is better (see the module's
    docstring for the range). NaN when the shorter side is under ``NIQE_MIN_SIDE`` (192 px) or
    the image is flat. The image is cropped to whole 96 px blocks from its top-left corner, as
    basicsr and MATLAB do."""
    rgb = _rgb_uint8(rgb)
    if min(rgb.shape[:2]) < NIQE_MIN_SIDE:
        return math.nan
    mu_pris, cov_pris, factor, table = _niqe_model()
    h, w = (s // NIQE_BLOCK * NIQE_BLOCK for s in rgb.shape[:2])
    img = _niqe_y(rgb[:h, :w])
    feats = []
    for scale in (1, 2):
        # basicsr's image is float32, so are its local mean and deviation: in flat areas they
        # round to the pixel's value exactly and the coefficient is 0, where float64 leaves a
        # residue of either sign that the AGGD fit counts (astronaut(): 3.065 vs 3.092). So
        # float32 here too, for the same (and steadier) zeros.
        img32 = img.astype(np.float32)
        mu = cv2.sepFilter2D(img, cv2.CV_64F, factor, factor, borderType=cv2.BORDER_REPLICATE).astype(np.float32)
        var = cv2.sepFilter2D(np.square(img32).astype(np.float64), cv2.CV_64F, factor, factor,
                              borderType=cv2.BORDER_REPLICATE).astype(np.float32)
        mscn = (img32 - mu) / (np.sqrt(np.abs(var - np.square(mu))) + np.float32(1))
        feats.append(_niqe_features(mscn, NIQE_BLOCK // scale, table))
        if scale == 1:
            img = (_imresize_half(img.astype(np.float32) / np.float32(255.0)) * np.float32(255.0)).astype(np.float64)
    feats = np.concatenate(feats, 1)
    complete = feats[~np.isnan(feats).any(1)]
    if len(complete) < 2:  # flat: every block has a feature of no value
        return math.nan
    mu_dist = np.nanmean(feats, 0)
    cov_dist = np.cov(complete, rowvar=False)
    d = mu_pris[0] - mu_dist
    quality = d @ np.linalg.pinv((cov_pris + cov_dist) / 2) @ d
    return float(np.sqrt(quality))


# ------------------------------------------------------------------------------- BRISQUE


@functools.lru_cache(maxsize=1)
def _brisque_model() -> dict[str, np.ndarray]:
    with np.load(BRISQUE_MODEL) as z:
        return {k: z[k] for k in z.files}


def _mscn(img: np.ndarray) -> np.ndarray:
    """The package's MSCN coefficients: a 7x7 Gaussian (sigma 7/6) local mean and deviation,
    zero padding (``scipy.signal.convolve2d(..., 'same')``), C = 1/255.

    A separable filter (OpenCV) agrees with ``convolve2d`` to ~1e-11 but where the mean equals
    the pixel (flat windows, ramps): there the coefficient is a rounding residue (+-1e-17 or 0)
    whose sign decides on which side of the AGGD fit the pixel counts, and photos with flat
    areas (scans, saturated skies) moved by up to 0.5 that way. So the rows holding such pixels
    are computed again with ``convolve2d`` itself, on bands of rows with 3 rows of context
    (a window never reaches further): its own residues, bit for bit, and the full cost only for
    images that are flat everywhere."""
    mu = cv2.sepFilter2D(img, cv2.CV_64F, _BRISQUE_K, _BRISQUE_K, borderType=cv2.BORDER_CONSTANT)
    var = cv2.sepFilter2D(img * img, cv2.CV_64F, _BRISQUE_K, _BRISQUE_K, borderType=cv2.BORDER_CONSTANT)
    exact = np.concatenate([[False], (np.abs(img - mu) < 1e-9).any(1), [False]])
    edges = np.flatnonzero(np.diff(exact.astype(np.int8)))
    for start, stop in zip(edges[::2], edges[1::2]):  # runs of rows [start, stop)
        lo, hi = max(0, start - 3), min(len(img), stop + 3)
        band = img[lo:hi]
        mu[start:stop] = signal.convolve2d(band, _BRISQUE_WINDOW, "same")[start - lo:stop - lo]
        var[start:stop] = signal.convolve2d(band * band, _BRISQUE_WINDOW, "same")[start - lo:stop - lo]
    return (img - mu) / (np.sqrt(np.abs(mu * mu - var)) + 1 / 255)


# the package's gaussian_kernel2d(7, 7 / 6), written as it writes it (the last bits count)
_Y, _X = np.indices((7, 7)) - 3
_BRISQUE_WINDOW = 1 / (2 * np.pi * (7 / 6) ** 2) * np.exp(-(_X**2 + _Y**2) / (2 * (7 / 6) ** 2))
_BRISQUE_WINDOW = _BRISQUE_WINDOW / np.sum(_BRISQUE_WINDOW)
_BRISQUE_K = np.exp(-np.arange(-3, 4) ** 2 / (2 * (7 / 6) ** 2))
_BRISQUE_K /= _BRISQUE_K.sum()


def _phi(a):
    return gamma(2 / a) ** 2 / (gamma(1 / a) * gamma(3 / a))


def _aggd_fit(x: np.ndarray) -> tuple[float, float, float, float]:
    """The package's ``asymmetric_generalized_gaussian_fit``: (alpha, mean, sigma_l, sigma_r),
    alpha solved from the moment ratio with the same ``optimize.root`` from 0.2."""
    x = x.ravel()
    sq = x * x
    neg = x < 0
    with np.errstate(invalid="ignore", divide="ignore"):
        sl = math.sqrt(sq[neg].mean()) if neg.any() else math.nan
        sr = math.sqrt(sq[~neg].mean()) if (~neg).any() else math.nan
        r_hat = np.abs(x).mean() ** 2 / sq.mean()
        g = sl / sr
        big_r = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    if not np.isfinite(big_r):
        return (math.nan,) * 4
    alpha = float(optimize.root(lambda z: _phi(z) - big_r, [0.2]).x[0])
    mean = (sr - sl) * math.sqrt(gamma(1 / alpha) / gamma(3 / alpha)) * gamma(2 / alpha) / gamma(1 / alpha)
    return alpha, mean, sl, sr


def _brisque_features(grey: np.ndarray) -> np.ndarray:
    feats = []
    for img in (grey, cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)):
        m = _mscn(img)
        alpha, _, sl, sr = _aggd_fit(m)
        feats += [alpha, (sl * sl + sr * sr) / 2]
        for prod in (m[:, :-1] * m[:, 1:], m[:-1] * m[1:], m[:-1, :-1] * m[1:, 1:], m[1:, :-1] * m[:-1, 1:]):
            alpha, mean, sl, sr = _aggd_fit(prod)
            feats += [alpha, mean, sl * sl, sr * sr]
    return np.array(feats)


def brisque(rgb: np.ndarray) -> float:
    """BRISQUE of an RGB uint8 HxWx3 (or HxW grey) image, as ``brisque.BRISQUE().score``;
    lower is better (see the module's docstring for the range). NaN when the shorter side is
    under ``BRISQUE_MIN_SIDE`` (32 px) or the image is flat."""
    rgb = _rgb_uint8(rgb)
    if min(rgb.shape[:2]) < BRISQUE_MIN_SIDE:
        return math.nan
    # skimage.color.rgb2gray as it computes it (times 1/255, not divided: the last bits count)
    grey = np.multiply(rgb, 1.0 / 255, dtype=np.float64) @ np.array([0.2125, 0.7154, 0.0721])
    feats = _brisque_features(grey)
    if not np.isfinite(feats).all():
        return math.nan
    m = _brisque_model()
    x = -1 + 2.0 / (m["feature_max"] - m["feature_min"]) * (feats - m["feature_min"])
    kernel = np.exp(-m["gamma"] * np.square(m["support_vectors"] - x).sum(1))
    return float(m["dual_coef"] @ kernel - m["rho"])
