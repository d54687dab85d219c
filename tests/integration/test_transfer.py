"""Pretrained weights into modified YAMLs and into the twins: stock checkpoints saved as ultralytics saves them."""

import contextlib
import copy
import logging
from pathlib import Path

import pytest
import torch
import yaml
from helpers import REPO, yolo
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel, yaml_model_load
from ultralytics.utils import LOGGER

from cspdet.integration import transfer

COCO_N = REPO.parent / "shared" / "data" / "weights" / "yolov5n-coco.pt"  # real COCO weights, never in the repo
SUMMARY = "Transferred {}/{} items from pretrained weights, matching layers by structure"


def randomize(model: torch.nn.Module, seed: int):
    """Give every float tensor a value of its own, so that a tensor equal after loading came from the checkpoint."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif tensor.is_floating_point():
                tensor.add_(0.05 * torch.randn(tensor.shape, generator=generator))


def stock_checkpoint(folder: Path, name: str, seed: int = 0) -> Path:
    """A stock model built from ultralytics' YAML, its weights randomised, saved by ``YOLO.save`` as ``NAME.pt``."""
    path = folder / name.replace(".yaml", ".pt")
    if not path.exists():
        model = YOLO(name)
        randomize(model.model, seed)
        model.ckpt = model.ckpt or {}  # 8.3.x saves only models loaded from a checkpoint otherwise
        model.save(path)
    return path


def checkpoint_model(path: Path) -> DetectionModel:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return (ckpt.get("ema") or ckpt["model"]).float()


def edited(name: str, at: int, insert: list | None = None, replace: list | None = None, remove: bool = False):
    """The YAML dict of ``name`` with a row inserted at index ``at``, put in place of row ``at``, or row ``at``
    removed; absolute ``from`` indices renumbered by hand, as a user does."""
    d = copy.deepcopy(yaml_model_load(name))
    rows, nb = d["backbone"] + d["head"], len(d["backbone"])
    if replace:
        rows[at] = replace
    else:
        by = -1 if remove else 1

        def renumber(f):
            moved = [x + by if x >= at else x for x in (f if isinstance(f, list) else [f])]
            return moved if isinstance(f, list) else moved[0]

        rows = [[renumber(r[0]), *r[1:]] if i >= at else r for i, r in enumerate(rows)]
        rows = rows[:at] + rows[at + 1 :] if remove else [*rows[:at], insert, *rows[at:]]
        nb += by if at < nb else 0
    d["backbone"], d["head"] = rows[:nb], rows[nb:]
    return d


def write_yaml(d: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump({k: v for k, v in d.items() if k not in {"yaml_file", "scale", "ch"}}))
    return path


@contextlib.contextmanager
def ultralytics_log():
    """The messages LOGGER emits inside (after its filters)."""
    lines = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())
    LOGGER.addHandler(handler)
    try:
        yield lines
    finally:
        LOGGER.removeHandler(handler)


def load_and_check(model: DetectionModel, ckpt: Path, moved: dict[int, int | None]):
    """Load ``ckpt`` into ``model``; every checkpoint tensor must land in its layer's new index (``moved``: source
    layer -> target layer, or None for a layer that is not used), and the other layers must keep their tensors."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with ultralytics_log() as lines:
        model.load(checkpoint_model(ckpt))
    after, source = model.state_dict(), checkpoint_model(ckpt).state_dict()
    received = set()
    for key, value in source.items():
        i, rest = key.split(".", 2)[1:]
        j = moved.get(int(i), int(i))
        if j is not None:
            target = f"model.{j}.{rest}"
            assert torch.equal(after[target], value.to(after[target].dtype)), f"{key} -> {target}"
            received.add(target)
    for key, value in after.items():
        if key not in received:
            assert torch.equal(value, before[key]), f"{key} changed but holds no checkpoint tensor"
    return len(received), len(source), len(after), lines


RESIDUAL = [-1, 1, "ResidualBlock", [256]]  # a new layer keeping the channels of yolo11's row 2


@pytest.mark.compat("pretrained")
@pytest.mark.parametrize("base", ["yolo11n.yaml", "yolo11_wrc-n.yaml"])
def test_inserted_row_keeps_every_stock_tensor(base, tmp_path_factory):
    ckpt = stock_checkpoint(tmp_path_factory.getbasetemp(), "yolo11n.yaml")
    model = DetectionModel(edited(base, 3, insert=RESIDUAL), verbose=False)
    moved = {i: i + 1 for i in range(3, 24)}
    received, source, total, lines = load_and_check(model, ckpt, moved)
    assert (received, source) == (499, 499)  # by key: the 36 of layers 0-2
    summary = [line for line in lines if "Transferred" in line]
    assert len(summary) == 1 and SUMMARY.format(499, total) in summary[0], lines
    assert "renumbered 3-23 -> 4-24; new: 3 ResidualBlock; shape mismatch: none" in summary[0]


@pytest.mark.compat("pretrained")
def test_removed_row_keeps_every_other_layer(tmp_path_factory):
    ckpt = stock_checkpoint(tmp_path_factory.getbasetemp(), "yolo11n.yaml")
    model = DetectionModel(edited("yolo11n.yaml", 10, remove=True), verbose=False)  # no C2PSA
    moved = {10: None, **{i: i - 1 for i in range(11, 24)}}
    received, source, total, lines = load_and_check(model, ckpt, moved)
    c2psa = sum(k.startswith("model.10.") for k in checkpoint_model(ckpt).state_dict())
    assert received == source - c2psa == total
    summary = next(line for line in lines if "Transferred" in line)
    # the Concat that read C2PSA now reads SPPF: another layer, without tensors
    assert summary.endswith("new: 20 Concat; shape mismatch: none; checkpoint layers not used: 10 C2PSA, 21 Concat")


@pytest.mark.compat("pretrained")
def test_replaced_row_keeps_every_other_layer(tmp_path_factory):
    ckpt = stock_checkpoint(tmp_path_factory.getbasetemp(), "yolo11n.yaml")
    c3k = [-1, 2, "C3k2", [256, True, 0.25]]  # C3k blocks inside: other tensors, the same channels
    model = DetectionModel(edited("yolo11n.yaml", 2, replace=c3k), verbose=False)
    received, source, _, lines = load_and_check(model, ckpt, {2: None})
    assert received == source - sum(k.startswith("model.2.") for k in checkpoint_model(ckpt).state_dict())
    summary = next(line for line in lines if "Transferred" in line)
    assert "renumbered none; new: 2 C3k2; shape mismatch: none; checkpoint layers not used: 2 C3k2" in summary


@pytest.mark.compat("pretrained")
def test_unchanged_rows_load_by_key_as_ultralytics_does(tmp_path_factory):
    ckpt = stock_checkpoint(tmp_path_factory.getbasetemp(), "yolo11n.yaml")
    received, source, _, lines = load_and_check(DetectionModel("yolo11n.yaml", verbose=False), ckpt, {})
    assert received == source == 499
    assert [line for line in lines if "Transferred" in line] == ["Transferred 499/499 items from pretrained weights"]


def test_placed_copy_holds_the_renamed_tensors(tmp_path_factory):
    """The checkpoint copy ultralytics loads from has exactly the keys the summary counts, on the same tensors."""
    source = checkpoint_model(stock_checkpoint(tmp_path_factory.getbasetemp(), "yolo11n.yaml"))
    alignment = transfer.plan(source, DetectionModel(edited("yolo11n.yaml", 3, insert=RESIDUAL), verbose=False))
    placed, renamed = transfer.placed(source, alignment).state_dict(), alignment.rename(source.state_dict())
    assert placed.keys() == renamed.keys() and all(
        placed[k] is renamed[k] or torch.equal(placed[k], renamed[k]) for k in placed
    )
    assert len(source.model) == 24 and len(source.state_dict()) == 499  # the source itself is unchanged


@pytest.mark.compat("pretrained")
def test_yolo_train_pretrained_prints_the_summary(tiny_dataset, tmp_path_factory, tmp_path):
    ckpt = stock_checkpoint(tmp_path_factory.getbasetemp(), "yolo11n.yaml")
    folder = tmp_path / "models"
    folder.mkdir()
    model = write_yaml(edited("yolo11n.yaml", 3, insert=RESIDUAL), folder / "yolo11n-gated.yaml")
    run = tmp_path / "run"
    run.mkdir()
    out = yolo(
        "train",
        f"model={model}",
        f"pretrained={ckpt}",
        f"data={tiny_dataset}",
        "epochs=1",
        "imgsz=64",
        "batch=4",
        "workers=0",
        "device=cpu",
        "plots=False",
        f"project={run}",
        "name=train",
        cwd=run,
    )
    log = out.stdout + out.stderr
    summary = [line for line in log.splitlines() if "matching layers by structure" in line]
    assert len(summary) == 1 and "renumbered 3-23 -> 4-24; new: 3 ResidualBlock; shape mismatch: " in summary[0], log
    # 8.3.x's CLI loads the weights into the 80-class YAML model first, then ultralytics moves them by key (nothing
    # moved) into the 2-class model; newer ones load once, into the 2-class model
    assert [line for line in log.splitlines() if "Transferred" in line][0] == summary[0]
    assert (run / "train" / "weights" / "best.pt").is_file()


def assert_computes_stock(twin: DetectionModel, stock: DetectionModel):
    """Every stock tensor under its own key in ``twin``, and the same outputs."""
    twin_state = twin.state_dict()
    for key, value in stock.state_dict().items():
        assert torch.equal(twin_state[key], value), key
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(twin.eval()(x)[0], stock.eval()(x)[0])


def twin_at(name: str, preset, nc: int) -> DetectionModel:
    """The twin ``name`` with every row at ``wrc: preset``."""
    d = copy.deepcopy(yaml_model_load(name))
    d["wrc"] = preset
    return DetectionModel(d, nc=nc, verbose=False)


@pytest.mark.compat("pretrained")
@pytest.mark.parametrize(
    ("stock", "twin", "presets"),
    [
        ("yolo11n.yaml", "yolo11_wrc-n.yaml", ["scalar"]),  # and channel, the YAML's own, below
        ("yolo11s.yaml", "yolo11_wrc-s.yaml", []),
        ("yolov8n.yaml", "yolov8_wrc-n.yaml", ["scalar"]),
    ],
)
def test_twin_from_stock_checkpoint_computes_the_stock_model(stock, twin, presets, tmp_path_factory):
    """The presets that start at alpha = beta = 1 compute the stock function exactly, from its own weights."""
    ckpt = stock_checkpoint(tmp_path_factory.getbasetemp(), stock)
    source = checkpoint_model(ckpt)
    with ultralytics_log() as lines:
        model = YOLO(twin).load(ckpt)  # Model.load from the file, at the twin's 'wrc: channel'
    assert not any("by structure" in line for line in lines)  # the same rows: ultralytics' key matching
    assert model.model.yaml["wrc"] == "channel"
    assert_computes_stock(model.model, source)
    for preset in presets:
        loaded = twin_at(twin, preset, source.yaml["nc"])
        loaded.load(source)
        assert_computes_stock(loaded, source)


def test_twin_at_rezero_does_not_compute_the_stock_model(tmp_path_factory):
    """The check above can fail: ReZero starts each block as the identity (alpha = 0)."""
    source = checkpoint_model(stock_checkpoint(tmp_path_factory.getbasetemp(), "yolo11n.yaml"))
    twin = twin_at("yolo11_wrc-n.yaml", "rezero", source.yaml["nc"])
    twin.load(source)
    with pytest.raises(AssertionError):
        assert_computes_stock(twin, source)


@pytest.mark.compat("pretrained")
@pytest.mark.skipif(not COCO_N.is_file(), reason=f"the COCO-pretrained YOLOv5n checkpoint is not at {COCO_N}")
def test_csp_wrc_from_coco_yolov5n_computes_it():
    stock = checkpoint_model(COCO_N)
    assert [r[2] for r in stock.yaml["backbone"]].count("C3") == 4  # stock yolov5n rows
    if DetectionModel(stock.yaml, verbose=False).state_dict().keys() != stock.state_dict().keys():
        saved = torch.load(COCO_N, map_location="cpu", weights_only=False).get("version")
        pytest.skip(f"{COCO_N.name} holds the layers of ultralytics {saved}, another layout than this release builds")
    twin = YOLO("csp_wrc-n.yaml").load(COCO_N).model  # its own 'wrc: scalar'
    assert twin.yaml["wrc"] == "scalar"
    assert_computes_stock(twin, stock)
