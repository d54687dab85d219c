"""Training script that tests/integration/test_distributed.py launches with torchrun on every "node".

    torchrun ... torchrun_train.py OUT_DIR '{"model": ..., "data": ..., ...}'

Trains with YOLO(model).train(**arguments) and writes, per rank, the images of each batch it trained on
(OUT_DIR/seen-rank{RANK}-epoch{EPOCH}.txt) and a hash of its final weights (OUT_DIR/rank{RANK}.json). With
PAUSE_EPOCH set, rank 1 stops at its first batch of that epoch, writes its PID to OUT_DIR/paused and waits to be
killed.
"""

import hashlib
import json
import os
import sys
import time
from pathlib import Path

from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionTrainer

RANK = int(os.environ["RANK"])
OUT = Path(sys.argv[1])
PAUSE_EPOCH = int(os.environ.get("PAUSE_EPOCH", -1))


class RecordingTrainer(DetectionTrainer):
    def preprocess_batch(self, batch):
        if RANK == 1 and self.epoch == PAUSE_EPOCH:
            (OUT / "paused").write_text(str(os.getpid()))
            time.sleep(120)
            sys.exit("rank 1 was not killed")
        with open(OUT / f"seen-rank{RANK}-epoch{self.epoch}.txt", "a") as f:
            f.writelines(f"{Path(p).name}\n" for p in batch["im_file"])
        return super().preprocess_batch(batch)


arguments = json.loads(sys.argv[2])
model = YOLO(arguments.pop("model"))
model.train(trainer=RecordingTrainer, **arguments)
trainer = model.trainer
network = getattr(trainer.model, "module", trainer.model)  # inside DistributedDataParallel
weights = b"".join(p.detach().cpu().numpy().tobytes() for p in network.parameters())
record = {"weights": hashlib.sha256(weights).hexdigest(), "start_epoch": trainer.start_epoch}
(OUT / f"rank{RANK}.json").write_text(json.dumps(record))
