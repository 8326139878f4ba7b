"""GFP-GAN's facial-component discriminators and the eye and mouth crops they judge.

GFP-GAN (Wang et al. 2021) adds three small discriminators, for the left eye, the right eye
and the mouth, each seeing ROI-aligned crops (``torchvision.ops.roi_align``) of the restored
and the clean face. Its data set reads the component boxes from a file made from FFHQ's 68
landmarks (``scripts/parse_landmark.py``); here they are derived from the 5 points every face
detector gives (eye centres, nose, mouth corners), so any aligned face works:

- eye box: centred on the eye point, half side ``EYE_HALF`` (0.24) x the distance between the
  eyes, at least 16 px at 512 (as in GFP-GAN), then enlarged by GFP-GAN's ``eye_enlarge_ratio``
  of 1.4. On the FFHQ template that is an 85 px square (GFP-GAN resamples eyes to 80 px);
- mouth box: centred between the mouth corners, half side half their distance (the corners
  are the ends of the mouth, the width GFP-GAN's box takes), at least 16 px at 512: 112 px on
  the template (GFP-GAN resamples mouths to 120 px).

Boxes are symmetric about the centre (GFP-GAN's ``mean - half + 1`` shifts them by a pixel).
"Left" is the eye on the left of the image, as in GFP-GAN.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .stylegan2_disc import ConvLayer
from .descriptor import Descriptor, Port

COMPONENTS = ("left_eye", "right_eye", "mouth")
EYE_HALF = 0.24  # half the eye box over the distance between the eyes (before enlarging)
EYE_ENLARGE = 1.4  # GFP-GAN's eye_enlarge_ratio
MIN_HALF_512 = 16.0  # GFP-GAN's smallest half side, at 512 px


@dataclass(frozen=True)
class ComponentDiscriminatorConfig:
    """GFP-GAN's ``FacialComponentDiscriminator``: VGG-style, widths ``channels`` x (1, 2, 4)
    (GFP-GAN: 64, fixed); blurred stride-2 downsampling twice, a logit map out."""

    channels: int = 64
    resample_kernel: tuple[int, ...] = (1, 3, 3, 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "resample_kernel", tuple(self.resample_kernel))  # JSON gives a list
        if self.channels < 1:
            raise ValueError("channels must be positive")

    def to_dict(self) -> dict:
        return asdict(self)


class FacialComponentDiscriminator(nn.Module):
    """Real/fake logit maps of component crops; its parameter names are GFP-GAN's."""

    def __init__(self, config: ComponentDiscriminatorConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = config or ComponentDiscriminatorConfig(**overrides)
        w, k = c.channels, c.resample_kernel
        self.conv1 = ConvLayer(3, w, 3)
        self.conv2 = ConvLayer(w, 2 * w, 3, downsample=True, resample_kernel=k)
        self.conv3 = ConvLayer(2 * w, 2 * w, 3)
        self.conv4 = ConvLayer(2 * w, 4 * w, 3, downsample=True, resample_kernel=k)
        self.conv5 = ConvLayer(4 * w, 4 * w, 3)
        self.final_conv = ConvLayer(4 * w, 1, 3, bias=True, activate=False)

    def forward(self, x: torch.Tensor, return_feats: bool = False):
        """Logits (N, 1, h, w); with ``return_feats`` also the features after conv3 and conv5,
        whose Gram matrices GFP-GAN's component style loss compares."""
        f1 = self.conv3(self.conv2(self.conv1(x)))
        f2 = self.conv5(self.conv4(f1))
        out = self.final_conv(f2)
        return (out, [f1, f2]) if return_feats else out


def crop_sizes(out_size: int) -> tuple[int, int]:
    """(eye, mouth) crop sides: GFP-GAN's 80 and 120 px at 512, scaled, at least 16 and 24 so
    that the discriminators' two downsamplings leave a map to judge."""
    return max(16, round(80 * out_size / 512)), max(24, round(120 * out_size / 512))


def component_boxes(landmarks: torch.Tensor, out_size: int) -> torch.Tensor:
    """(N, 3, 4) boxes x0, y0, x1, y1 of the left eye, right eye and mouth, from (N, 5, 2)
    landmarks (eyes, nose, mouth corners; left = image left) of ``out_size`` faces."""
    lm = landmarks.float()
    floor = MIN_HALF_512 * out_size / 512
    eye_dist = (lm[:, 1] - lm[:, 0]).norm(dim=-1, keepdim=True)
    eye_half = (EYE_HALF * eye_dist).clamp_min(floor) * EYE_ENLARGE
    mouth_half = (0.5 * (lm[:, 4] - lm[:, 3]).norm(dim=-1, keepdim=True)).clamp_min(floor)
    centres = torch.stack([lm[:, 0], lm[:, 1], (lm[:, 3] + lm[:, 4]) / 2], dim=1)  # (N, 3, 2)
    halves = torch.stack([eye_half, eye_half, mouth_half], dim=1)  # (N, 3, 1)
    return torch.cat([centres - halves, centres + halves], dim=-1)


def crop_components(images: torch.Tensor, boxes: torch.Tensor, eye_size: int,
                    mouth_size: int) -> dict[str, torch.Tensor]:
    """ROI-aligned crops {left_eye, right_eye: (N, C, eye_size, eye_size), mouth: (N, C,
    mouth_size, mouth_size)} of ``images`` at ``boxes`` (N, 3, 4); differentiable in the images."""
    from torchvision.ops import roi_align

    n = images.shape[0]
    index = torch.arange(n, device=images.device, dtype=images.dtype)[:, None]
    rois = [torch.cat([index, boxes[:, i].to(images.device, images.dtype)], dim=1) for i in range(3)]
    eyes = roi_align(images, torch.cat(rois[:2]), output_size=eye_size)  # both eyes in one call
    mouth = roi_align(images, rois[2], output_size=mouth_size)
    return {"left_eye": eyes[:n], "right_eye": eyes[n:], "mouth": mouth}


PRESETS: dict[str, ComponentDiscriminatorConfig] = {
    "tiny": ComponentDiscriminatorConfig(channels=8),
    "small": ComponentDiscriminatorConfig(channels=16),
    "paper": ComponentDiscriminatorConfig(channels=64),  # GFP-GAN's
}


def _inputs(c: ComponentDiscriminatorConfig, side: int | None) -> tuple[Port, ...]:
    return (Port("input", 3, "[-1, 1]", multiple=4),)  # an eye or mouth crop; two downsamplings


DESCRIPTORS = (Descriptor("FacialComponentDiscriminator", ComponentDiscriminatorConfig, FacialComponentDiscriminator,
                          kind="discriminator", inputs=_inputs, output="score", output_range="logits",
                          presets=PRESETS),)
