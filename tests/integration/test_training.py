"""Trainer hooks on the optimizer that ultralytics actually builds."""

import pytest
import torch
from ultralytics import YOLO
from ultralytics.cfg import get_cfg

from cspdet.integration.training import training_loss
from cspdet.nn import WeightedShortcut

pytestmark = pytest.mark.compat("lifecycle")


@pytest.mark.parametrize("optimizer", ["SGD", "AdamW"])
def test_wrc_weights_are_not_decayed(tiny_dataset, tmp_path, optimizer):
    model = YOLO("csp_wrc-n.yaml")
    model.train(
        data=str(tiny_dataset),
        epochs=1,
        imgsz=64,
        batch=4,
        device="cpu",
        workers=0,
        optimizer=optimizer,
        project=str(tmp_path),
        name="run",
        plots=False,
        val=False,
    )
    trainer = model.trainer
    wrc = {id(p) for m in trainer.model.modules() if isinstance(m, WeightedShortcut) for p in m.parameters()}
    assert len(wrc) == 14
    decay_of = {id(p): g["weight_decay"] for g in trainer.optimizer.param_groups for p in g["params"]}
    assert set(decay_of) == {id(p) for p in trainer.model.parameters()}  # every parameter exactly once
    assert all(decay_of[i] == 0 for i in wrc)
    # everything else is grouped as ultralytics groups it: conv weights decay, biases and BatchNorm weights do not
    decayed = {n for n, p in trainer.model.named_parameters() if decay_of[id(p)] > 0}
    expected = {n for n, p in trainer.model.named_parameters() if n.endswith("weight") and ".bn." not in n}
    assert decayed == expected
    assert [g.get("param_group") for g in trainer.optimizer.param_groups][-1] == "wrc"


def test_training_loss_of_a_bare_model():
    """training_loss gives the model's own loss outside a trainer; it reaches every WRC weight."""
    torch.manual_seed(0)
    model = YOLO("csp_wrc-n.yaml").model.train()
    batch = {
        "img": torch.rand(2, 3, 64, 64),
        "batch_idx": torch.tensor([0.0, 1.0]),
        "cls": torch.tensor([[0.0], [1.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.4], [0.4, 0.6, 0.3, 0.2]]),
    }
    loss, _ = training_loss(model, batch)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and loss.sum() > 0 and model.args.box == get_cfg().box
    wrc = [p for m in model.modules() if isinstance(m, WeightedShortcut) for p in m.parameters()]
    assert len(wrc) == 14 and all(p.grad is not None and p.grad.abs().sum() > 0 for p in wrc)
