"""Weighted residual connection (WRC): H(x) = alpha * F(x) + beta * x with learnable alpha and beta."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import nn

EPS = 1e-4  # fast-normalised fusion epsilon, as in darknet and BiFPN
WEIGHTS = ("scalar", "channel")
NORMS = ("none", "relu", "softmax")


@dataclass(frozen=True)
class WRCSpec:
    """How a shortcut is weighted.

    Args:
        weights (str): 'scalar' (one alpha and one beta) or 'channel' (one per output channel).
        alpha (float): Initial residual-branch weight: 1 classic (darknet), 0 ReZero, small LayerScale.
        beta (float): Initial shortcut weight.
        norm (str): 'none'; 'relu' for relu(w) / (sum relu(w) + 1e-4) over (alpha, beta); 'softmax' over them.
        zero_last (bool): Zero-initialise the BatchNorm gamma of the branch's last conv (as timm's zero_init_last).
    """

    weights: str = "scalar"
    alpha: float = 1.0
    beta: float = 1.0
    norm: str = "none"
    zero_last: bool = False

    def __post_init__(self):
        if self.weights not in WEIGHTS:
            raise ValueError(f"wrc weights '{self.weights}' is not one of {WEIGHTS}")
        if self.norm not in NORMS:
            raise ValueError(f"wrc norm '{self.norm}' is not one of {NORMS}")
        for key in ("alpha", "beta"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"wrc {key} must be a number, got {value!r}")
        if not isinstance(self.zero_last, bool):
            raise ValueError(f"wrc zero_last must be true or false, got {self.zero_last!r}")
        if self.alpha == 0 and self.zero_last:
            raise ValueError("wrc alpha=0 with zero_last=true cannot learn: the branch output and both gradients are 0")
        if self.norm == "relu" and min(self.alpha, self.beta) <= 0:
            raise ValueError("wrc norm='relu' needs alpha > 0 and beta > 0: relu has no gradient at or below 0")

    @classmethod
    def parse(cls, value) -> WRCSpec | None:
        """Build a spec from a YAML value: false/None (plain shortcut), true, a preset name or a mapping."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            if value not in PRESETS:
                raise ValueError(f"unknown wrc preset '{value}', choose from {sorted(PRESETS)} or give a mapping")
            return PRESETS[value]
        if isinstance(value, dict):
            options = dict(value)
            base = WRCSpec.parse(options.pop("preset", True))
            unknown = set(options) - {f.name for f in fields(cls)}
            if unknown:
                raise ValueError(
                    f"unknown wrc keys {sorted(unknown)}, expected preset, {[f.name for f in fields(cls)]}"
                )
            return replace(base, **options)
        raise ValueError(f"wrc must be true/false, a preset name or a mapping, got {value!r}")


PRESETS = {
    "scalar": WRCSpec(),
    "channel": WRCSpec(weights="channel"),
    "rezero": WRCSpec(alpha=0.0),
    "layerscale": WRCSpec(weights="channel", alpha=0.1),
    "fast": WRCSpec(norm="relu"),
    "softmax": WRCSpec(norm="softmax"),
}


class WeightedShortcut(nn.Module):
    """Combine a residual branch and its shortcut as alpha * branch + beta * shortcut.

    Args:
        c (int): Channels of both inputs.
        spec (WRCSpec): Weighting options.
    """

    frozen = False  # set by freeze() once fuse() has folded the weights away

    def __init__(self, c: int, spec: WRCSpec):
        super().__init__()
        n = c if spec.weights == "channel" else 1
        self.alpha = nn.Parameter(torch.full((n,), float(spec.alpha)))  # 1-D: never routed to Muon, never decayed
        self.beta = nn.Parameter(torch.full((n,), float(spec.beta)))
        self.norm = spec.norm

    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the effective (alpha, beta) after normalisation, shaped (1, C or 1, 1, 1)."""
        a, b = self.alpha, self.beta
        if self.norm == "relu":
            a, b = a.relu(), b.relu()
            total = a + b + EPS
            a, b = a / total, b / total
        elif self.norm == "softmax":
            a, b = torch.stack((a, b)).softmax(0)
        return a.view(1, -1, 1, 1), b.view(1, -1, 1, 1)

    def freeze(self, branch_scale: torch.Tensor | None, shortcut_scale: torch.Tensor | None):
        """Replace alpha and beta by constant factors (None or all ones: 1) once fuse() folded the rest into convs."""
        del self.alpha, self.beta
        for name, scale in (("branch_scale", branch_scale), ("shortcut_scale", shortcut_scale)):
            unit = scale is None or bool((scale == 1).all())
            self.register_buffer(name, None if unit else scale.detach().reshape(1, -1, 1, 1).clone())
        self.frozen = True

    def forward(self, branch: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """Return alpha * branch + beta * shortcut (after freeze: at most one factor, fused into one addcmul)."""
        if not self.frozen:
            a, b = self.coefficients()
            return a * branch + b * shortcut
        if self.branch_scale is None:
            return (
                shortcut + branch
                if self.shortcut_scale is None
                else torch.addcmul(branch, self.shortcut_scale, shortcut)
            )
        if self.shortcut_scale is None:
            return torch.addcmul(shortcut, self.branch_scale, branch)
        return torch.addcmul(self.shortcut_scale * shortcut, self.branch_scale, branch)
