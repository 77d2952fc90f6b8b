"""AutoEncoder networks of the unsupervised baseline.

``SSIMAutoEncoder`` is the convolutional AutoEncoder of the MVTec AD paper (Bergmann et al., "MVTec
AD", CVPR 2019, and "Improving unsupervised defect segmentation by applying structural similarity
to autoencoders", VISAPP 2019): a dense bottleneck of ``latent`` (100) values, so the decoder
can only draw what good images have in common and a defect is not reconstructed.
``ConvAutoEncoder`` is defectkit's earlier fully convolutional one (a latent *map* of H/16 x W/16),
kept so that checkpoints written with it still load.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: the encoder of Bergmann et al. at 128 px: (out channels, kernel, stride); it ends at 8x8
BERGMANN_LAYERS = (
    (32, 4, 2),
    (32, 4, 2),
    (32, 3, 1),
    (64, 4, 2),
    (64, 3, 1),
    (128, 4, 2),
    (64, 3, 1),
    (32, 3, 1),
)


def _act(layer: nn.Module) -> list[nn.Module]:
    return [layer, nn.LeakyReLU(0.2, True)]


def bergmann_layers(image_size: int) -> tuple[tuple[int, int, int], ...]:
    """The encoder layers for ``image_size`` (a power of two >= 32): Bergmann's 128-px stack,
    with 32-channel stride-2 layers added in front (larger images) or the first ones removed
    (smaller), so that the last feature map is always 8x8."""
    n = int(math.log2(image_size // 8))
    if image_size < 32 or 8 * 2**n != image_size:
        raise ValueError(f"image_size must be a power of two >= 32, got {image_size}")
    layers = list(BERGMANN_LAYERS)
    if n > 4:
        layers = [(32, 4, 2)] * (n - 4) + layers
    while sum(1 for _, _, s in layers if s == 2) > n:
        layers.pop(0)
    return tuple(layers)


class SSIMAutoEncoder(nn.Module):
    """NxCxSxS in [0, 1] -> NxCxSxS in [0, 1], S = ``image_size`` (a power of two >= 32).

    Encoder: the layers of ``bergmann_layers`` (LeakyReLU 0.2) down to 8x8, then an 8x8
    convolution to a ``latent``-vector (1x1). Decoder: the mirror image (transposed
    convolutions where the encoder strides), sigmoid output.
    """

    def __init__(self, image_size: int = 128, latent: int = 100, channels: int = 3) -> None:
        super().__init__()
        layers = bergmann_layers(image_size)
        enc: list[nn.Module] = []
        cin = channels
        for cout, k, s in layers:
            enc += _act(nn.Conv2d(cin, cout, k, s, 1))
            cin = cout
        enc.append(nn.Conv2d(cin, latent, 8, 1, 0))
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = _act(nn.ConvTranspose2d(latent, cin, 8, 1, 0))
        for i in range(len(layers) - 1, 0, -1):
            cout, (_, k, s) = layers[i - 1][0], layers[i]
            conv = nn.ConvTranspose2d if s == 2 else nn.Conv2d
            dec += _act(conv(cin, cout, k, s, 1))
            cin = cout
        _, k, s = layers[0]
        dec += [(nn.ConvTranspose2d if s == 2 else nn.Conv2d)(cin, channels, k, s, 1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)
    )


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)
    )


class ConvAutoEncoder(nn.Module):
    """Nx3xHxW in [0, 1] -> Nx3xHxW in [0, 1]; H and W multiples of 16.

    Four stride-2 stages (width, 2w, 4w, 4w channels) down to H/16 x W/16 x ``latent``, mirrored
    by transposed convolutions, sigmoid output.
    """

    def __init__(self, width: int = 32, latent: int = 64) -> None:
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            _down(3, w),
            _down(w, 2 * w),
            _down(2 * w, 4 * w),
            _down(4 * w, 4 * w),
            nn.Conv2d(4 * w, latent, 3, 1, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent, 4 * w, 3, 1, 1),
            nn.LeakyReLU(0.2, True),
            _up(4 * w, 4 * w),
            _up(4 * w, 2 * w),
            _up(2 * w, w),
            _up(w, w),
            nn.Conv2d(w, 3, 3, 1, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def build_autoencoder(spec: dict) -> nn.Module:
    """The network a checkpoint's ``model_spec`` describes (``arch`` "ssim-ae" or "conv-autoencoder")."""
    if spec["arch"] == "ssim-ae":
        return SSIMAutoEncoder(spec["image_size"], spec["latent"])
    if spec["arch"] == "conv-autoencoder":
        return ConvAutoEncoder(spec["width"], spec["latent"])
    raise ValueError(f"unknown AutoEncoder arch {spec['arch']!r}")
