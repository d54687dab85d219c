"""Multi-GPU training: DDP workers know cspdet's blocks, and alpha/beta gradients are synchronised (CPU, gloo)."""

import sys
import textwrap

from helpers import run


def test_ddp_worker_builds_model_without_autoload(tiny_dataset, tmp_path):
    """Ultralytics' generated DDP worker script rebuilds a YAML-trained cspdet model with auto-load switched off."""
    parent = f"""
from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.dist import generate_ddp_file
model = YOLO("csp_wrc-n.yaml")  # the stock CLI path: the trainer gets the YAML name, not a built model
args = dict(model="csp_wrc-n.yaml", data={str(tiny_dataset)!r}, epochs=1, imgsz=64, batch=4, device="cpu",
            workers=0, project={str(tmp_path)!r}, name="ddp", plots=False)
trainer = DetectionTrainer(overrides=args, _callbacks=model.callbacks)
assert isinstance(trainer.model, str)
print(generate_ddp_file(trainer))
"""
    script = run([sys.executable, "-c", parent], cwd=tmp_path).stdout.strip().splitlines()[-1]
    worker = run([sys.executable, script], cwd=tmp_path, env={"CSPDET_AUTOLOAD": "0"})
    assert "cspdet.nn.stages.C3WRC" in worker.stdout + worker.stderr
    assert (tmp_path / "ddp" / "weights" / "best.pt").is_file()


def test_gloo_ddp_step_synchronises_wrc_gradients(tmp_path):
    """Two processes, one DDP model without find_unused_parameters: no unused-parameter error, equal alpha/beta."""
    script = tmp_path / "ddp_step.py"
    script.write_text(
        textwrap.dedent(f"""
        import torch, torch.distributed as dist, torch.multiprocessing as mp
        from torch.nn.parallel import DistributedDataParallel as DDP

        def tensors(output):
            if isinstance(output, torch.Tensor):
                yield output
            else:
                for item in output.values() if isinstance(output, dict) else output:
                    yield from tensors(item)

        def worker(rank):
            dist.init_process_group("gloo", init_method="file://{tmp_path / "rendezvous"}", rank=rank, world_size=2)
            import cspdet
            from ultralytics.nn.tasks import DetectionModel
            torch.manual_seed(0)
            model = DDP(DetectionModel("csp_wrc-n.yaml", nc=2, verbose=False), find_unused_parameters=False)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            names = [n for n, _ in model.named_parameters() if n.endswith(("wrc.alpha", "wrc.beta"))]
            for step in range(2):
                torch.manual_seed(rank + 10 * step)  # different data on each rank
                outputs = model(torch.rand(2, 3, 64, 64))
                loss = sum(t.float().square().mean() for t in tensors(outputs))
                optimizer.zero_grad()
                loss.backward()
                params = dict(model.named_parameters())
                grads = torch.cat([params[n].grad for n in names])
                gathered = [torch.zeros_like(grads) for _ in range(2)]
                dist.all_gather(gathered, grads)
                assert grads.abs().sum() > 0 and torch.equal(gathered[0], gathered[1])
                optimizer.step()
            if rank == 0:
                print(f"synchronised {{len(names)}} WRC weights over 2 steps")
            dist.barrier()  # no rank tears gloo down while the other still talks to it
            dist.destroy_process_group()

        if __name__ == "__main__":
            mp.spawn(worker, nprocs=2)
    """)
    )
    out = run([sys.executable, str(script)], cwd=tmp_path)
    assert "synchronised 14 WRC weights over 2 steps" in out.stdout
