"""Image quality against a reference: PSNR and SSIM (basicsr's), LPIPS (where its backbone's
weights are cached). Used by the trainers' validation, the benchmarks and the evaluation
scripts of every task.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["ALEXNET_FILE", "PSNR_CAP", "lpips_metric", "psnr_ssim"]


def psnr_ssim(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """PSNR (dB) and SSIM of two HxWx3 RGB images in [0, 1], with basicsr's implementations
    on the 0-255 scale, over RGB (colour shifts are part of what a restorer must undo), no
    border crop."""
    from basicsr.metrics import calculate_psnr, calculate_ssim

    import gan  # noqa: F401  (the torchvision shim basicsr needs)

    a255 = np.clip(a, 0, 1).astype(np.float64) * 255.0
    b255 = np.clip(b, 0, 1).astype(np.float64) * 255.0
    psnr = min(float(calculate_psnr(a255, b255, crop_border=0, test_y_channel=False)), PSNR_CAP)
    return psnr, float(calculate_ssim(a255, b255, crop_border=0, test_y_channel=False))


PSNR_CAP = 100.0  # identical images: basicsr says inf, which would swamp any mean


ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's ImageNet AlexNet, LPIPS's default backbone


def lpips_metric(hub_dir: str | Path | None = None):
    """LPIPS (AlexNet) when the backbone's weights are in the torch hub cache, else None;
    returns (module or None, a line for the log). Never downloads: the backbone is built
    randomly, then filled from the cached file (read with ``weights_only=True``)."""
    import torch

    path = Path(hub_dir or torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE
    if not path.is_file():
        return None, f"LPIPS off: AlexNet weights not found at {path}"
    import lpips

    model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    # torchvision's "features.<i>.<p>" -> lpips' "slice<k>.<i>.<p>" (same modules, regrouped)
    where = {name.split(".")[1]: name.split(".")[0] for name in model.net.state_dict()}
    mapped = {f"{where[k.split('.')[1]]}.{k.split('.', 1)[1]}": v for k, v in state.items()
              if k.startswith("features.") and k.split(".")[1] in where}
    model.net.load_state_dict(mapped, strict=True)
    return model.eval().requires_grad_(False), f"LPIPS: AlexNet from {path}"
