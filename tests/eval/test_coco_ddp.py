"""Under DDP every rank validates a shard of the images: rank 0 must score the detections of all ranks, exactly as a
single process scores the whole split."""

import json
import sys
import textwrap

from helpers import run
from helpers.coco_cases import write_coco_dataset


def test_rank_zero_scores_every_shard(tmp_path):
    """Two gloo ranks run ultralytics' DetectionValidator (with cspdet's COCO wrappers) on the shards that the trainer's
    validation loader gives them; rank 0's predictions.json and coco_metrics.json equal those of `validator(model)` in
    one process.

    Ultralytics' own ``validator(model=...)`` cannot run under RANK >= 0 without CUDA (it asks CUDA for the rank's
    device), so each rank steps the same validator through its loop as ``BaseValidator.__call__`` does.
    """
    data = write_coco_dataset(tmp_path / "data")
    script = tmp_path / "shards.py"
    script.write_text(
        textwrap.dedent(f"""
        import os
        from pathlib import Path

        ARGS = dict(data={str(data)!r}, imgsz=64, batch=2, device="cpu", plots=False, split="val", workers=0)


        def model():
            import torch
            from ultralytics.nn.tasks import DetectionModel

            torch.manual_seed(0)  # the same weights in every process
            return DetectionModel("csp_wrc-n.yaml", nc=2, verbose=False).eval()


        def worker(rank):
            os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")  # read at import, as torchrun sets
            import torch
            import torch.distributed as dist
            from ultralytics.data import build_dataloader
            from ultralytics.data.utils import check_det_dataset
            from ultralytics.models.yolo.detect import DetectionValidator
            from ultralytics.nn.autobackend import AutoBackend

            dist.init_process_group("gloo", init_method="file://{tmp_path / "rendezvous"}", rank=rank, world_size=2)
            validator = DetectionValidator(save_dir=Path({str(tmp_path / "ddp")!r}), args=ARGS)
            validator.training, validator.device, validator.stride = False, torch.device("cpu"), 32
            validator.data = check_det_dataset(ARGS["data"])
            dataset = validator.build_dataset(validator.data["val"], batch=2)
            validator.dataloader = build_dataloader(dataset, 2, 0, shuffle=False, rank=rank)  # the trainer's val loader
            backend = AutoBackend(model=model(), device=validator.device)
            validator.init_metrics(backend)
            with torch.no_grad():
                for batch in validator.dataloader:
                    batch = validator.preprocess(batch)
                    validator.update_metrics(validator.postprocess(backend(batch["img"])), batch)
            print(f"rank {{rank}} validated {{len(validator.coco_results.detections)}} images", flush=True)
            validator.gather_stats()
            if rank == 0:
                validator.get_stats()
                validator.finalize_metrics()
                validator.print_results()
            dist.destroy_process_group()


        if __name__ == "__main__":
            import torch.multiprocessing as mp

            mp.spawn(worker, nprocs=2)
            from ultralytics.models.yolo.detect import DetectionValidator

            DetectionValidator(save_dir=Path({str(tmp_path / "single")!r}), args=ARGS)(model=model())
    """)
    )
    out = run([sys.executable, str(script)], cwd=tmp_path)
    assert "rank 0 validated 2 images" in out.stdout and "rank 1 validated 2 images" in out.stdout
    ddp, single = (
        {f: json.loads((tmp_path / run_dir / f).read_text()) for f in ("predictions.json", "coco_metrics.json")}
        for run_dir in ("ddp", "single")
    )
    key = lambda p: (p["image_id"], p["category_id"], p["score"], p["bbox"])  # noqa: E731
    assert len({p["image_id"] for p in single["predictions.json"]}) == 4
    assert sorted(ddp["predictions.json"], key=key) == sorted(single["predictions.json"], key=key)
    assert ddp["coco_metrics.json"] == single["coco_metrics.json"]
