"""One torchrun worker of the two-node test (tests/test_distributed.py), started by each of two torchrun agents.

In a process group of its own it runs the in-process checks' float64 gradient comparison and steps of the real
training code, and saves their results as OUT/rank{RANK}.pt; then it trains as `wgan train ARGS...` does.
Usage: two_node_worker.py OUT ARGS...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from test_distributed import _gradients, _training
from wgan import distributed
from wgan.cli import main


def checks(out: Path) -> None:
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # compared with one process's gradients, to rounding (conftest)
    try:
        with distributed.process_group(torch.device("cpu")):
            result = {"gradients": _gradients(distributed.rank()), "training": _training(distributed.rank()),
                      "rank": distributed.rank(), "world": distributed.world_size(),
                      "local_rank": int(os.environ["LOCAL_RANK"]), "nodes": distributed.node_count()}
    finally:
        torch.set_default_dtype(torch.float32)
    torch.save(result, out / f"rank{result['rank']}.pt")


if __name__ == "__main__":
    checks(Path(sys.argv[1]))
    raise SystemExit(main(["train", *sys.argv[2:]]))
