"""Aligning faces to the FFHQ template and pasting restored faces back, as GFP-GAN does.

Written with OpenCV rather than through facexlib's ``FaceRestoreHelper``: that class builds
(and downloads) its RetinaFace and parsing networks in its constructor, whether they are
wanted or not. The steps are the same as in ``FaceRestoreHelper``:

* ``align``: a similarity transform (rotation, uniform scale, shift) fitted to the five
  landmarks with ``cv2.estimateAffinePartial2D(..., method=cv2.LMEDS)`` (LMEDS matches
  skimage's estimate, which the FFHQ template was made with), then ``cv2.warpAffine`` with a
  grey border.
* ``paste``: the inverse transform (``cv2.invertAffineTransform``, scaled by the upscale
  factor) carries the restored face back; a feathered mask blends it in: the warped square
  eroded and blurred (``paste_faces_to_input_image``), or the face-parsing mask when a parser
  is given. Only the box the warped face covers is touched: every pixel outside the mask is
  the background's own value, bit for bit, and the cost does not grow with the photo.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

# facexlib's FFHQ 5-point template for 512 x 512 faces (eyes, nose, mouth corners).
FFHQ_TEMPLATE_512 = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                              [201.26117, 371.41043], [313.08905, 371.15118]], np.float32)
BORDER_GREY = (132, 133, 135)  # GFP-GAN pads faces at the photo's edge with this grey ((135, 133, 132) in its BGR)


def template(size: int) -> np.ndarray:
    """The five template points for a ``size`` x ``size`` face."""
    return FFHQ_TEMPLATE_512 * (size / 512.0)


def estimate_affine(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 similarity transform taking ``landmarks`` (5, 2) onto the template."""
    m, _ = cv2.estimateAffinePartial2D(np.asarray(landmarks, np.float32), template(size), method=cv2.LMEDS)
    if m is None:  # degenerate landmarks (all on one point): no transform fits
        raise ValueError("face landmarks are degenerate; cannot align")
    return m


def warp_face(image: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    """The aligned ``size`` x ``size`` face crop of an RGB uint8 image."""
    return cv2.warpAffine(image, affine, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_GREY)


def inverse_affine(affine: np.ndarray, upscale: float = 1, gfpgan: bool = False) -> np.ndarray:
    """Face pixels -> output pixels, for an output ``upscale`` times the input's size.

    Pixel centres sit at integers in OpenCV, so input pixel x lands at upscale * x +
    (upscale - 1) / 2 in the output. GFP-GAN (facexlib's ``paste_faces_to_input_image``) adds
    upscale / 2 when upscaling, half a pixel off: ``gfpgan=True`` does as it does, for the
    photo GFP-GAN's own pipeline makes (``restore faces --bg realesrgan``)."""
    inv = cv2.invertAffineTransform(affine) * upscale
    inv[:, 2] += (0.5 * upscale if upscale > 1 else 0) if gfpgan else (upscale - 1) / 2
    return inv


def _region(inv: np.ndarray, size: int, height: int, width: int, margin: int = 2) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1): the output box the warped face square covers, clipped; None if outside."""
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) - [0.5, 0.5, 0]
    pts = corners @ inv.T
    x0, y0 = np.floor(pts.min(0)).astype(int) - margin
    x1, y1 = np.ceil(pts.max(0)).astype(int) + margin + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    return None if x0 >= x1 or y0 >= y1 else (y0, y1, x0, x1)


def feather_mask(size: int, inv: np.ndarray, shape: tuple[int, int], upscale: int,
                 face_mask: np.ndarray | None = None) -> np.ndarray:
    """The blending weight (float32, ``shape``) of a face warped by ``inv`` into a region.

    Without ``face_mask``: GFP-GAN's square mask, eroded by 2 * upscale px (no dark rim from
    the warp's edge), then eroded by ~1/10 of the face's side and blurred by ~1/20 of it, so
    the face fades into the background. With ``face_mask`` (size x size, in [0, 1], already
    soft): that mask, warped."""
    h, w = shape
    if face_mask is not None:
        return cv2.warpAffine(face_mask.astype(np.float32), inv, (w, h), flags=cv2.INTER_CUBIC).clip(0, 1)
    mask = cv2.warpAffine(np.ones((size, size), np.float32), inv, (w, h))
    k = int(2 * upscale)
    mask = cv2.erode(mask, np.ones((k, k), np.uint8))
    edge = int(float(mask.sum()) ** 0.5) // 20
    if edge > 0:
        mask = cv2.erode(mask, np.ones((2 * edge, 2 * edge), np.uint8))
        mask = cv2.GaussianBlur(mask, (2 * edge + 1, 2 * edge + 1), 0)
    return mask


def paste(background: np.ndarray, face: np.ndarray, affine: np.ndarray, upscale: float = 1,
          face_mask: np.ndarray | None = None, gfpgan: bool = False) -> np.ndarray:
    """Blend an aligned ``face`` (S x S x 3 uint8) into ``background`` in place and return it.

    ``background`` is the output canvas: HxW (grey) or HxWx3, uint8 or uint16, ``upscale``
    times the size of the image ``affine`` was fitted on. A grey canvas gets the face's luma;
    a 16-bit one gets it scaled by 257. ``gfpgan``: GFP-GAN's offset (``inverse_affine``)."""
    size = face.shape[0]
    inv = inverse_affine(affine, upscale, gfpgan)
    box = _region(inv, size, *background.shape[:2])
    if box is None:
        return background
    y0, y1, x0, x1 = box
    inv_local = inv.copy()
    inv_local[:, 2] -= (x0, y0)
    shape = (y1 - y0, x1 - x0)
    mask = feather_mask(size, inv_local, shape, upscale, face_mask)
    warped = cv2.warpAffine(face, inv_local, shape[::-1], flags=cv2.INTER_LINEAR).astype(np.float32)
    blend_into(background[y0:y1, x0:x1], warped, mask)
    return background


def blend_into(region: np.ndarray, rgb: np.ndarray, mask: np.ndarray) -> None:
    """``region`` (a view of the canvas: grey or RGB, uint8 or uint16) += ``mask`` x (``rgb`` -
    region), in place; ``rgb`` is float32 RGB on the 8-bit scale: a grey canvas gets its luma,
    a 16-bit one gets it scaled by 257."""
    if region.ndim == 2:
        rgb = rgb @ np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma
    else:
        mask = mask[..., None]
    if region.dtype == np.uint16:
        rgb = rgb * 257.0
    base = region.astype(np.float32)
    out = base + mask * (rgb - base)  # where mask == 0 this is base exactly
    region[...] = np.rint(out).clip(0, np.iinfo(region.dtype).max).astype(region.dtype)


# Face parsing (facexlib's ParseNet, 19 classes): which classes belong to the pasted face.
# From FaceRestoreHelper: skin, brows, eyes, glasses, ears, nose, mouth, lips; not the
# background, earrings (14), neck (16), cloth (17), hair (18) or hat.
_PARSE_KEEP = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0], np.float32)


def parse_mask(parser: torch.nn.Module, face: np.ndarray, device: torch.device) -> np.ndarray:
    """A soft face mask (S x S float32 in [0, 1]) from ParseNet on a restored face, blurred
    twice and cleared at the border as in ``FaceRestoreHelper``."""
    size = face.shape[0]
    x = cv2.resize(face, (512, 512), interpolation=cv2.INTER_LINEAR) if size != 512 else face
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).float().div(127.5).sub(1)
    with torch.inference_mode():
        labels = parser(t[None].to(device))[0].argmax(1)[0].cpu().numpy()
    mask = _PARSE_KEEP[labels]
    mask = cv2.GaussianBlur(mask, (101, 101), 11)
    mask = cv2.GaussianBlur(mask, (101, 101), 11)
    border = 10
    mask[:border], mask[-border:], mask[:, :border], mask[:, -border:] = 0, 0, 0, 0
    return cv2.resize(mask, (size, size)) if size != 512 else mask


def load_parser(weights, device: torch.device) -> torch.nn.Module:
    """facexlib's ParseNet from its published state dict, read with ``weights_only=True``."""
    from facexlib.parsing.parsenet import ParseNet

    from .detect import load_state

    net = ParseNet(in_size=512, out_size=512, parsing_ch=19)
    net.load_state_dict(load_state(weights), strict=True)
    return net.to(device).eval()


def resize_to(image: np.ndarray, height: int, width: int, method: str = "lanczos") -> np.ndarray:
    """Resize HxW(xC) uint8/uint16; ``nearest`` at integer factors repeats pixels exactly."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image.copy()
    if method == "nearest" and height % h == 0 and width % w == 0:
        return np.repeat(np.repeat(image, height // h, axis=0), width // w, axis=1)
    flags = {"nearest": cv2.INTER_NEAREST, "lanczos": cv2.INTER_LANCZOS4, "area": cv2.INTER_AREA}[method]
    return cv2.resize(image, (width, height), interpolation=flags)

