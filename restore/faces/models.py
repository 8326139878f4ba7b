"""Which face network ``restore faces`` runs, and the file it comes from."""
from __future__ import annotations

from pathlib import Path

import torch

FACE_MODELS = ("gfpgan-v1.4", "gfpgan-v1.3")  # best first


def load_face_model(weights: str | Path | torch.nn.Module | None, device: torch.device) -> tuple[torch.nn.Module, str]:
    """The face network and one line saying which it is and why.

    ``weights``: None (GFPGANv1.4, else v1.3, from the weights cache, else the bundled
    ``restorer``), a manifest name (``restoreformer``, ``codeformer`` too), a run folder, a
    ``.safetensors`` file, a published ``.pth`` of GFP-GAN, RestoreFormer or CodeFormer (read with
    ``weights_only=True``; which one from its keys: ``load_published_face``), or a network object.
    Never downloads."""
    from restore.models.cache import find_cached, load_network

    if isinstance(weights, torch.nn.Module):
        return weights.to(device).eval(), f"the given {type(weights).__name__}"
    if weights is None:
        for name in FACE_MODELS:
            if find_cached(name) is not None:
                return load_network(name, device)[0], f"{name} (found in the weights cache)"
        model = load_network("restorer", device)[0]
        return model, ("bundled restorer (no GFPGANv1.4/v1.3 in the weights cache; "
                       "`restore weights fetch gfpgan-v1.4` for sharper faces)")
    path = Path(weights).expanduser()
    if path.suffix == ".onnx":
        from restore.export.backend import load_model_file

        model = load_model_file(path, device)[0]
        return model, f"{path} ({model.meta.get('arch', 'ONNX')}, onnxruntime)"
    if path.suffix == ".pth" and path.is_file():
        model, what = load_published_face(path)
        return model.to(device).eval(), f"{what} from {path}"
    model = load_network(weights, device)[0]
    return model, f"{weights} ({type(model).__name__})"


def load_published_face(path: str | Path) -> tuple[torch.nn.Module, str]:
    """A published face prior ``.pth`` (GFPGANv1.3/v1.4, RestoreFormer.pth, codeformer.pth) and
    its name, the architecture told by the state dict's keys (CodeFormer's code-predicting
    transformer, RestoreFormer's cross-attention decoder, else GFP-GAN's layout, whose loader
    names what does not fit). Read once, with ``weights_only=True``."""
    from gan.nets import codeformer, gfpgan, restoreformer
    from gan.weightio import read_state_dict

    state = read_state_dict(path, keys=("params_ema", "params"))
    if codeformer.is_codeformer(state):
        return codeformer.load_published(state), "CodeFormer"
    if restoreformer.is_restoreformer(state):
        return restoreformer.load_published(state), "RestoreFormer"
    return gfpgan.load_published(state), "GFP-GAN"


def face_source(weights: str | Path | torch.nn.Module | None) -> Path | None:
    """The file ``load_face_model`` reads for ``weights`` (what the onnxruntime backend's cached
    export is keyed by); None for a network object."""
    from restore.models.cache import find_cached, resolve_weights

    if isinstance(weights, torch.nn.Module):
        return None
    if weights is None:
        return next((p for n in FACE_MODELS if (p := find_cached(n)) is not None), None) or resolve_weights("restorer")
    path = Path(weights).expanduser()
    return path if path.is_file() else resolve_weights(weights)


class WithW(torch.nn.Module):
    """A CodeFormer called with one request's fidelity weight: the shared network is not changed
    (another request, thread or ``with_options`` copy may be using it with another)."""

    def __init__(self, net: torch.nn.Module, w: float) -> None:
        super().__init__()
        self.net, self.w = net, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, w=self.w)
