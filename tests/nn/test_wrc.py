"""WRC options: parsing from YAML values, the guards against unlearnable set-ups, and the weighting maths."""

import pytest
import torch

from cspdet.nn import PRESETS, WeightedShortcut, WRCSpec


@pytest.mark.parametrize(
    "value, expected",
    [
        (False, None),
        (None, None),
        (True, WRCSpec()),
        ("rezero", WRCSpec(alpha=0.0)),
        ("channel", WRCSpec(weights="channel")),
        ({"weights": "channel", "alpha": 1e-2}, WRCSpec(weights="channel", alpha=1e-2)),
        ({"preset": "fast", "beta": 2.0}, WRCSpec(norm="relu", beta=2.0)),
    ],
)
def test_parse(value, expected):
    assert WRCSpec.parse(value) == expected


@pytest.mark.parametrize(
    "value, message",
    [
        ("zero", "unknown wrc preset 'zero'"),
        ({"wieghts": "channel"}, "unknown wrc keys ['wieghts']"),
        ({"weights": "pixel"}, "wrc weights 'pixel'"),
        ({"norm": "l2"}, "wrc norm 'l2'"),
        ({"alpha": "big"}, "wrc alpha must be a number"),
        ({"alpha": 0, "zero_last": True}, "cannot learn"),
        ({"norm": "relu", "alpha": 0}, "relu has no gradient"),
        (3, "wrc must be true/false"),
    ],
)
def test_parse_rejects(value, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        WRCSpec.parse(value)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_learn(preset):
    """Every preset gives alpha and beta a non-zero gradient from the first step."""
    shortcut = WeightedShortcut(4, PRESETS[preset])
    branch, x = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    shortcut(branch, x).square().sum().backward()
    assert shortcut.alpha.grad.abs().sum() > 0 and shortcut.beta.grad.abs().sum() > 0


def test_coefficients():
    branch, x = torch.randn(1, 3, 2, 2), torch.randn(1, 3, 2, 2)
    plain = WeightedShortcut(3, WRCSpec(alpha=0.5, beta=2.0))
    torch.testing.assert_close(plain(branch, x), 0.5 * branch + 2.0 * x)
    fast = WeightedShortcut(3, WRCSpec(norm="relu", alpha=1.0, beta=3.0))
    torch.testing.assert_close(fast(branch, x), (branch + 3 * x) / (4 + 1e-4))
    soft = WeightedShortcut(3, WRCSpec(norm="softmax", alpha=0.0, beta=0.0))
    torch.testing.assert_close(soft(branch, x), 0.5 * branch + 0.5 * x)
    channel = WeightedShortcut(3, WRCSpec(weights="channel"))
    assert channel.alpha.shape == (3,)
    with torch.no_grad():
        channel.alpha.copy_(torch.tensor([0.0, 1.0, 2.0]))
    torch.testing.assert_close(channel(branch, x), branch * torch.tensor([0.0, 1.0, 2.0]).view(1, 3, 1, 1) + x)
