"""Under DDP every rank validates a shard of the images: rank 0 must score the detections of all ranks."""

import sys
import textwrap

from coco_cases import write_coco_dataset
from conftest import run


def test_rank_zero_scores_every_shard(tmp_path):
    write_coco_dataset(tmp_path / "data")
    script = tmp_path / "shards.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, os
        from pathlib import Path
        from types import SimpleNamespace

        import numpy as np
        import torch.distributed as dist
        import torch.multiprocessing as mp

        def worker(rank):
            os.environ.update(RANK=str(rank), WORLD_SIZE="2")  # read by ultralytics at import, as torchrun sets them
            dist.init_process_group("gloo", init_method="file://{tmp_path / "rendezvous"}", rank=rank, world_size=2)
            from cspdet.eval.results import CocoResults
            from cspdet.integration.evaluation import gather_stats

            root = Path({str(tmp_path / "data")!r})
            json_file, image_dir = root / "annotations" / "instances_val.json", root / "images" / "val"
            coco = json.loads(json_file.read_text())
            files = [str(image_dir / im["file_name"]) for im in coco["images"]]
            validator = SimpleNamespace(coco_results=CocoResults(json_file, image_dir, files))
            for file, image in list(zip(files, coco["images"]))[rank::2]:  # this rank's shard: ground truth back
                objects = [a for a in coco["annotations"] if a["image_id"] == image["id"] and not a["iscrowd"]]
                boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in objects)])
                classes = np.array([[3, 11].index(a["category_id"]) for a in objects])
                validator.coco_results.add(file, boxes, np.ones(len(objects)), classes)
            gather_stats(lambda v: None, validator)
            if rank == 0:
                metrics = validator.coco_results.score({str(tmp_path)!r})
                print("AP", metrics["AP"], "AR100", metrics["AR100"])
            dist.destroy_process_group()

        if __name__ == "__main__":
            mp.spawn(worker, nprocs=2)
    """)
    )
    out = run([sys.executable, str(script)], cwd=tmp_path)
    assert "AP 1.0 AR100 1.0" in out.stdout
