"""The epoch scalars (12 official COCO numbers, WRC alpha/beta per stage) in results.csv, TensorBoard and MLflow."""

import csv
import math
import os
import shutil
from pathlib import Path

import pytest
from helpers import yolo
from helpers.coco_files import write_coco_dataset

from cspdet.eval.coco import METRIC_KEYS

COCO = [f"coco/{k}" for k in METRIC_KEYS]
WRC = [f"wrc/{layer}.{w}" for layer in (2, 4, 6, 8) for w in ("alpha", "beta")]  # csp_wrc-n's weighted stages


def results(run: Path) -> list[dict]:
    with open(run / "results.csv", newline="") as f:
        return [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """A 2-epoch training of csp_wrc-n on a small COCO dataset with ultralytics' TensorBoard and MLflow loggers on."""
    root = tmp_path_factory.mktemp("logged")
    config = root / "config"
    (config / "Ultralytics").mkdir(parents=True)
    shutil.copy(Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "Arial.ttf", config / "Ultralytics")
    env = {"YOLO_CONFIG_DIR": str(config), "MLFLOW_TRACKING_URI": (root / "mlruns").as_uri(),
           "MLFLOW_EXPERIMENT_NAME": "cspdet"}  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3.x keeps its file store behind this switch
        patch.delenv("PYTEST_CURRENT_TEST")  # ultralytics' loggers stay off while a test runs, in any process
        yolo("settings", "tensorboard=True", "mlflow=True", env=env)
        data = write_coco_dataset(root / "coco")
        args = ["model=csp_wrc-n.yaml", f"data={data}", "epochs=2", "imgsz=64", "batch=4", "workers=0", "plots=False"]
        yolo("train", *args, f"project={root}", "name=run", env=env)
    return root, results(root / "run")


def test_results_csv_has_the_epoch_scalars(logged_run):
    _, rows = logged_run
    assert len(rows) == 2
    for row in rows:
        assert all(0 <= row[k] <= 1 or row[k] == -1 for k in COCO)  # -1: undefined, as COCO reports it
        assert all(0.5 < row[k] < 1.5 for k in WRC)  # csp_wrc's default weighting starts at alpha = beta = 1


def test_tensorboard_event_file_holds_them_per_epoch(logged_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, rows = logged_run
    events = EventAccumulator(str(root / "run"))
    events.Reload()
    for key in COCO + WRC:
        logged = [(e.step, e.value) for e in events.Scalars(key)]
        assert [s for s, _ in logged] == [1, 2]
        assert [v for _, v in logged] == pytest.approx([row[key] for row in rows], abs=1e-5)


def test_mlflow_file_store_holds_them_per_epoch(logged_run, monkeypatch):
    from mlflow.tracking import MlflowClient

    root, rows = logged_run
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(root / "mlruns").as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("cspdet").experiment_id])
    for key in COCO + WRC:
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        assert [s for s, _ in history] == [0, 1]  # ultralytics' MLflow steps count from 0
        assert [v for _, v in history] == pytest.approx([row[key] for row in rows], abs=1e-5)


def test_results_csv_keeps_its_columns_without_per_epoch_validation(tmp_path):
    data = write_coco_dataset(tmp_path / "coco")
    args = ["model=csp_wrc-n.yaml", f"data={data}", "epochs=2", "imgsz=64", "batch=4", "workers=0", "plots=False"]
    yolo("train", *args, "val=False", f"project={tmp_path}", "name=run")
    first, last = results(tmp_path / "run")
    assert list(first) == list(last) and set(COCO + WRC) <= set(first)
    assert all(math.isnan(first[k]) for k in COCO) and all(not math.isnan(last[k]) for k in COCO + WRC)
