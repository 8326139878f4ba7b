"""Apply a trained segmentation network to images of any size: ``restore.Segmenter``."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from gan.precision import autocast
from restore.ensemble import check_orientations, ensemble
from restore.export.backend import on_backend
from restore.inference import Inference
from restore.tiling import tiled_inference

from .bioimageio import PackageNetwork, is_package, load_package
from .crf import dense_crf
from .postprocess import remove_small, split_instances
from .postprocess import fill_holes as fill_holes_fn
from .preprocess import median_diameter, prepare_image, rescale


class Segmenter(Inference):
    """A segmentation model ready for inference.

    ``diameter``: the typical object diameter in the input, in pixels; ``"auto"`` measures
    it from a first pass and, when it differs from the diameter the model was trained at by
    more than 25%, segments again at the matching scale; ``None`` uses the image as it is.
    ``backend``: torch, or onnxruntime (the network's export, made once into the weights cache;
    ``weights`` may also be an exported ``.onnx`` file). ``trust_torchscript``: run a bioimage.io
    package's TorchScript from elsewhere even where it calls operators outside the allow-list
    (None: the environment's ``RESTORE_TRUST_TORCHSCRIPT``).
    """

    task = "segment"

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu",
                 tile: int = 512, overlap: float = 0.25, batch_size: int = 4, blend: str = "gaussian",
                 diameter: float | str | None = "auto", precision: str | None = None, backend: str = "torch",
                 tta: int = 1, trust_torchscript: bool | None = None) -> None:
        self.setup(device, precision, backend, tta)  # precision None: fp32, restore segment's default
        if is_package(weights):  # a bioimage.io model package (.zip, or a folder with rdf.yaml)
            self.path, self.source, self.meta = load_package(weights, self.device, self.backend, trust_torchscript)
            self.runs_from_file(self.source)
        else:
            self.path, self.source, self.meta = self.load(weights or "nuclei", "segmenter")  # the network as loaded
        cfg = self.source.config
        self.dims, self.in_channels, self.num_classes = cfg.dims, cfg.in_channels, cfg.out_channels
        self.model_diameter = float(self.meta.get("diameter") or 0) or None
        self.diameter = diameter
        self.overlap, self.batch_size, self.blend = overlap, batch_size, blend
        self.tile = self._fit_tile(tile)
        self.model = self._on_backend()

    def _on_backend(self) -> torch.nn.Module:
        """The network that runs: the loaded one, or its onnxruntime export (one file for every
        tile where the sides may vary; one per tile for valid convolutions and UNETR)."""
        if isinstance(self.source, PackageNetwork):  # a package from elsewhere runs as it came
            return self.source
        return on_backend(self.source, self.backend, source=self.path, device=self.device, tile=self.tile)

    def with_options(self, *, tile: int | None = None, overlap: float | None = None,
                     diameter: float | str | None = "keep", tta: int | None = None) -> Segmenter:
        """A copy sharing this one's network, with another tile, overlap or diameter (``"keep"``:
        this one's), so a server loads each model once and varies these per request."""
        new = copy.copy(self)
        if tile is not None:
            new.tile = self._fit_tile(int(tile))
            if new.tile != self.tile:
                new.model = new._on_backend()  # the cached export of that tile, where sizes are fixed
        if overlap is not None:
            new.overlap = float(overlap)
        if tta is not None:
            new.tta = check_orientations(int(tta))
        if diameter != "keep":
            if diameter is not None and diameter != "auto" and not float(diameter) > 0:
                raise ValueError(f"diameter must be 'auto', None or a positive number, not {diameter!r}")
            new.diameter = diameter
        return new

    def _fit_tile(self, tile: int) -> int:
        """Round the tile up to a size the network accepts (multiple of 2**depth or 16)."""
        cfg = self.source.config
        if getattr(cfg, "padding", "same") == "valid":
            return cfg.valid_input_size(tile)
        m = 2 ** cfg.depth if hasattr(cfg, "depth") else cfg.patch_size
        return max(m, -(-tile // m) * m)

    def _tile_for(self, spatial: tuple[int, ...]) -> int | tuple[int, ...]:
        """The tile, shrunk along each axis where the image is smaller, when the network takes
        any multiple of its size step ("same" padding, torch or a dynamic-size export): a 16 x 16
        slice then costs a 16 x 16 forward pass, not one over a 512 x 512 mirrored tile (that
        was ~0.25 s a slice, most of the time a volume of small slices took)."""
        cfg = self.source.config
        if getattr(cfg, "padding", "same") == "valid" or not hasattr(cfg, "depth"):
            return self.tile  # valid convolutions and UNETR take fixed sizes only
        m = 2 ** cfg.depth
        return tuple(min(self.tile, max(m, -(-n // m) * m)) for n in spatial)

    # -- probabilities -------------------------------------------------------------------
    def _probs_at(self, x: np.ndarray, factor: float) -> np.ndarray:
        """Class probabilities of normalised (C, *spatial) ``x`` seen zoomed by ``factor``."""
        size = x.shape[1:]
        if factor != 1:
            x, _ = rescale(x, None, factor)

        tile = self._tile_for(x.shape[1:])

        def tiled(t: torch.Tensor) -> torch.Tensor:
            return tiled_inference(self.model, t, tile, overlap=self.overlap, blend=self.blend,
                                   batch_size=self.batch_size, device=self.device)

        with autocast(self.precision, self.device):
            logits = ensemble(tiled, torch.from_numpy(np.ascontiguousarray(x)), self.tta)
        if factor != 1:
            logits = torch.nn.functional.interpolate(
                logits[None], size=size, mode="bilinear" if self.dims == 2 else "trilinear", align_corners=False)[0]
        return torch.softmax(logits, 0).numpy() if self.num_classes > 1 else torch.sigmoid(logits).numpy()

    def _foreground(self, probs: np.ndarray) -> np.ndarray:
        return probs.argmax(0) > 0 if probs.shape[0] > 1 else probs[0] > 0.5

    def probabilities(self, image: np.ndarray, *, levels: tuple[float, float] | None = None,
                      factor: float | None = None) -> np.ndarray:
        """(K, *spatial) class probabilities for an image (H, W[, C]) or volume (D, H, W[, C]).

        ``levels`` and ``factor`` fix the intensity scaling and the zoom instead of measuring them
        on ``image``: a block of a larger volume (``restore.segment.blocks``) gets the volume's."""
        x = self._prepare(image, levels) if self._is_single(image) else None
        if x is None:  # a volume given to a 2D model: slice by slice, into one array (no list + stack copy)
            out = None
            for i, plane in enumerate(image):
                p = self.probabilities(plane, levels=levels, factor=factor)
                if out is None:
                    out = np.empty((p.shape[0], len(image), *p.shape[1:]), np.float32)
                out[:, i] = p
            return out
        if factor is not None:
            return self._probs_at(x, factor)
        if self.model_diameter and self.diameter == "auto":
            # First pass at the image's own scale; measure the objects; segment again at the
            # model's scale only when they are more than 25% off (else the first pass stands).
            first = self._probs_at(x, 1.0)
            factor = self._auto_factor(first)
            return first if factor == 1.0 else self._probs_at(x, factor)
        return self._probs_at(x, self._scale_factor(x))

    def _prepare(self, image: np.ndarray, levels: tuple[float, float] | None) -> np.ndarray:
        own = getattr(self.source, "prepare", None)  # a foreign package's own preprocessing
        if own is not None:
            return own(image, self.in_channels, self.dims)
        return prepare_image(image, self.in_channels, self.dims, levels)

    def zoom_for(self, sample: np.ndarray, levels: tuple[float, float] | None = None) -> float:
        """The zoom ``probabilities`` would use for ``sample`` (1.0 when it keeps the scale): what
        a volume's blocks share, measured once on a sample of it."""
        if not self._is_single(sample):  # a 2D model on a stack: its middle slice
            return self.zoom_for(sample[len(sample) // 2], levels)
        x = self._prepare(sample, levels)
        if self.model_diameter and self.diameter == "auto":
            return self._auto_factor(self._probs_at(x, 1.0))
        return self._scale_factor(x)

    def _is_single(self, image: np.ndarray) -> bool:
        """True for one input of the model's rank; False for a volume given to a 2D model."""
        spatial = image.ndim - (1 if image.ndim > 2 and image.shape[-1] in (3, 4) else 0)
        if spatial < self.dims:
            raise ValueError(f"a {self.dims}D model needs a {self.dims}D input, got shape {image.shape}")
        return spatial == self.dims

    def _scale_factor(self, x: np.ndarray) -> float:
        """The zoom that brings the objects of ``x`` to the model's training diameter."""
        if not self.model_diameter or self.diameter is None:
            return 1.0
        if self.diameter != "auto":
            return self.model_diameter / float(self.diameter)
        return self._auto_factor(self._probs_at(x, 1.0))

    def _auto_factor(self, first: np.ndarray) -> float:
        labels = split_instances(self._foreground(first), min_size=4)
        found = median_diameter(labels)
        if not found:
            return 1.0
        factor = float(np.clip(self.model_diameter / found, 0.25, 4.0))
        return factor if abs(np.log(factor)) > np.log(1.25) else 1.0

    # -- labels ----------------------------------------------------------------------------
    def __call__(self, image: np.ndarray, *, instances: bool = False, min_size: int = 16,
                 fill_holes: bool = False, crf: bool = False, levels: tuple[float, float] | None = None,
                 factor: float | None = None, split: tuple[int, float] | None = None) -> np.ndarray:
        """Label map: class index per pixel, or (``instances``) one label per object. ``split``:
        the instance split's (min_distance, h), fixed (``postprocess.instance_scale``)."""
        probs = self.probabilities(image, levels=levels, factor=factor)
        if crf and self.dims == 2 and probs.ndim == 3:
            grey = prepare_image(image, 1, 2, levels)[0].clip(0, 1)
            probs = dense_crf(torch.from_numpy(probs), torch.from_numpy(grey)[None]).numpy()
        # the smallest integer type from here on (int64 was 8 bytes a voxel in every copy the
        # post-processing makes: the most memory a block of a large volume took)
        small = np.uint8 if probs.shape[0] <= 256 else np.uint16
        labels = probs.argmax(0).astype(small) if probs.shape[0] > 1 else (probs[0] > 0.5).astype(np.uint8)
        del probs
        if min_size:
            labels = remove_small(labels, min_size)
        if fill_holes:
            labels = fill_holes_fn(labels)
        if instances:
            md, h = split if split is not None else (0, None)
            return split_instances(labels > 0, min_distance=md, h=h, min_size=min_size)
        return labels.astype(np.uint8 if labels.max() < 256 else np.uint16)
