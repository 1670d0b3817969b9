"""``--augment``: each training batch redrawn at random, as a few tensor ops on the whole batch.

MNIST's digits come from one scanner: centred, upright, of one size and one pen. A photo of a
digit written by hand is none of these, even after predict's preparation. Augmentation shows
the network each digit a little differently every time it sees it:

- stroke thickness: each image blended towards its 3x3 dilation (the maximum of each pixel's
  neighbourhood: a thicker pen) or its 3x3 erosion (the minimum: a thinner one), by a random
  fraction up to ``stroke``;
- an affine map per image: shift, rotation, scale and shear, each uniform within its strength;
- an elastic distortion (Simard, Steinkraus and Platt, 2003): a displacement field per image,
  uniform noise in [-1, 1] per pixel smoothed by a Gaussian of ``ELASTIC_SIGMA`` pixels and
  scaled by ``elastic`` (their alpha), in pixels.

The affine map and the displacement field are added into one sampling grid, so each batch is
resampled once (``F.grid_sample``, bilinear). All draws come from one CPU generator, which the
checkpoint carries (``Augment.generator``), so a resumed run draws what an uninterrupted one
would, on any device. A batch is augmented in ``step()`` (step.py), never while a resume skips
the batches already done.

The elastic field is drawn in the smoothing's leading directions. Smoothing a 32x32 noise image
U with the Gaussian is the product G U G' with G the 32x32 matrix of the blur (zero outside the
picture); G's 8 leading singular directions P (singular values S) hold 99.99% of the smoothed
field's variance, and P'UP is, by the central limit theorem, normal with U's variance (1/3). So
the field is P S Z S P' with Z an 8x8 normal draw: Simard's field, from 64 numbers per image and
direction instead of 1,024 and a 25-tap convolution (tests compare the two).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from lenet_cli.config import TrainConfig

ELASTIC_SIGMA = 4.0  # pixels: the smoothing of Simard et al.'s MNIST experiments
ELASTIC_RANK = 8  # leading directions of the smoothing kept (99.99% of the field's variance)
SEED_OFFSET = 1  # the generator's seed is the run's + 1 (the data order uses the run's own)


_DEFAULT = TrainConfig()  # the strengths' defaults are the config's (config/fields.py)


@dataclass(frozen=True)
class Strengths:
    """The largest change of each kind (0 turns a kind off); config fields ``augment_*``."""

    shift: float = _DEFAULT.augment_shift  # pixels, in x and in y
    rotate: float = _DEFAULT.augment_rotate  # degrees, either way
    scale: float = _DEFAULT.augment_scale  # the size times 1 +- scale
    shear: float = _DEFAULT.augment_shear  # degrees
    stroke: float = _DEFAULT.augment_stroke  # fraction of a 3x3 dilation or erosion
    elastic: float = _DEFAULT.augment_elastic  # alpha of the displacement field, pixels

    @classmethod
    def of(cls, cfg: TrainConfig) -> Strengths:
        """The strengths a TrainConfig sets."""
        return cls(
            shift=cfg.augment_shift,
            rotate=cfg.augment_rotate,
            scale=cfg.augment_scale,
            shear=cfg.augment_shear,
            stroke=cfg.augment_stroke,
            elastic=cfg.augment_elastic,
        )


def generator_for(seed: int) -> torch.Generator:
    """The augmentation generator of a run with this seed, before its first draw."""
    return torch.Generator().manual_seed((seed + SEED_OFFSET) % 2**64)


class Augment:
    """``augment(x)``: the batch ``x`` [N,1,H,W] (normalised images) transformed at random.

    ``background`` is the value of a blank pixel in the normalised images (-mean/std): the
    transforms work on the ink above it, so what moves in from outside the picture is paper.
    """

    def __init__(self, strengths: Strengths, background: float, generator: torch.Generator):
        self.s, self.background, self.generator = strengths, float(background), generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if n == 0:
            return x
        s, g = self.s, self.generator
        # six draws per image, always: the stream does not depend on which strengths are zero
        u = (torch.rand(n, 6, generator=g) * 2 - 1).to(x.device)  # uniform in [-1, 1)
        ink = x - self.background
        if s.stroke:
            ink = _stroke(ink, (u[:, 5] * s.stroke).view(n, 1, 1, 1))
        grid = _affine_grid(u, s, h, w)  # [N,2,H,W]: the input x, then y, in [-1, 1] units
        if s.elastic:
            z = torch.randn(n, 2, ELASTIC_RANK, ELASTIC_RANK, generator=g).to(x.device)
            units = torch.tensor([2.0 / w, 2.0 / h], device=x.device).view(1, 2, 1, 1)
            grid = grid + elastic_field(z * (units * s.elastic), h, w)  # alpha pixels, as units
        # grid_sample reads the grid as [N,H,W,2] through this view: no interleaving copy
        grid = grid.to(x.dtype).permute(0, 2, 3, 1)
        out = F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out + self.background


def _stroke(ink: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Each image moved by ``|t|`` ([N,1,1,1], t in [-1, 1]) towards its 3x3 dilation (t > 0)
    or erosion (t < 0); ``ink`` is >= 0 with 0 for paper, so the padding is paper too."""
    thick, thin = _neighbourhood(ink, torch.maximum), _neighbourhood(ink, torch.minimum)
    return torch.lerp(ink, torch.where(t > 0, thick, thin), t.abs())


def _neighbourhood(ink: torch.Tensor, pick) -> torch.Tensor:  # noqa: ANN001
    """The maximum (or minimum) of each pixel's 3x3 neighbourhood: along rows, then columns
    (cheaper than max_pool2d's stride-1 CPU kernel on one-channel images)."""
    p = F.pad(ink, (1, 1, 1, 1))
    rows = pick(pick(p[..., :-2], p[..., 1:-1]), p[..., 2:])
    return pick(pick(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


def _affine_grid(u: torch.Tensor, s: Strengths, h: int, w: int) -> torch.Tensor:
    """[N,2,H,W]: for each output pixel, the input x (channel 0) and y (channel 1) it samples,
    in the grid's [-1, 1] units (align_corners=False), as a * x + b * y + shift: per image a
    rotation, shear, 1/scale and shift. The draws are symmetric about no change, so drawing
    the map from output to input is drawing the map."""
    angle = u[:, 0] * math.radians(s.rotate)
    shear = torch.tan(u[:, 1] * math.radians(s.shear))
    inv = 1.0 / (1.0 + u[:, 2] * s.scale)
    c, si = torch.cos(angle) * inv, torch.sin(angle) * inv
    a = torch.stack([c, si], dim=1).view(-1, 2, 1, 1)
    b = torch.stack([c * shear - si, si * shear + c], dim=1).view(-1, 2, 1, 1)
    shift = torch.stack([u[:, 3] * (2.0 * s.shift / w), u[:, 4] * (2.0 * s.shift / h)], dim=1)
    xs = ((torch.arange(w, device=u.device) * 2 + 1) / w - 1).view(1, 1, 1, w)  # pixel centres
    ys = ((torch.arange(h, device=u.device) * 2 + 1) / h - 1).view(1, 1, h, 1)
    return a * xs + (b * ys + shift.view(-1, 2, 1, 1))  # [N,2,1,W] + [N,2,H,1]: one full op


def blur_matrix(size: int, sigma: float = ELASTIC_SIGMA) -> torch.Tensor:
    """G: row i is the normalised Gaussian kernel (radius 3 sigma) centred on pixel i, cut off
    at the picture's edges (a convolution with zero padding): smoothing U is G U G'."""
    radius = max(1, math.ceil(3 * sigma))
    kernel_sum = torch.exp(-(torch.arange(-radius, radius + 1.0) ** 2) / (2 * sigma**2)).sum()
    i = torch.arange(size, dtype=torch.float32)
    d = i.view(-1, 1) - i.view(1, -1)
    g = torch.exp(-(d**2) / (2 * sigma**2)) / kernel_sum
    return torch.where(d.abs() <= radius, g, torch.zeros(()))


@lru_cache(maxsize=8)
def _smoothing_basis(size: int) -> torch.Tensor:
    """P S: the blur matrix's ELASTIC_RANK leading directions, each times its singular value."""
    p, sv, _ = torch.linalg.svd(blur_matrix(size).double())
    return (p[:, :ELASTIC_RANK] * sv[:ELASTIC_RANK]).float()


def elastic_field(z: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Smoothed displacement fields [..., H, W] of alpha 1 from normal draws ``z`` [..., r, r]
    (r = ELASTIC_RANK): P_h S_h Z S_w' P_w' with Z = z * sqrt(1/3) (the module docstring), as
    two plain matrix products over the whole batch; the result is a view, laid out [H, ..., W]."""
    bh = _smoothing_basis(h).to(z.device)
    bw = _smoothing_basis(w).to(z.device)
    r, lead = z.shape[-1], z.shape[:-2]
    along_x = (z.reshape(-1, r) * math.sqrt(1 / 3)) @ bw.T  # [M * r, W]
    rows = along_x.view(-1, r, w).transpose(0, 1).reshape(r, -1)  # [r, M * W]
    return (bh @ rows).view(h, *lead, w).movedim(0, -2)
