"""Batches for a GPU that cannot hold the dataset: the images stay in host memory (the mapped file, whose
pages the page cache holds and drops as it must), and a background thread draws each batch's indices,
gathers its images into pinned memory and queues it a few batches ahead of the step, which copies it to
the device without blocking. The labels are small and live on the device, where the steps' own label
draws index them.

Where the dataset fits (nearly always: Fashion-MNIST is 47 MB, CelebA at 64x64 2.5 GB), training keeps
it whole on the GPU instead, and batches are index draws there (data/core.py's Data.batch): no host
round trip and no thread.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field, fields

import torch

from wgan.data.core import Data, to_model_space

PREFETCH_BATCHES = 3  # gathered ahead of the step: enough to hide a page fault or two


@dataclass
class StreamedData(Data):
    """A Data whose `x` stays on the host and whose batches arrive on `device` (labels `y` already there)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    prefetch_batches: int = PREFETCH_BATCHES

    def __post_init__(self):
        self._queue: queue.Queue | None = None
        self._batch_size = 0
        self._stop = threading.Event()

    def batch(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A uniformly drawn batch (with replacement), in model space, on `device`. With `generator` drawn here
        and now, from it; otherwise taken from the thread that gathers ahead."""
        if generator is not None:
            return self._to_device(*self._gather(batch_size, generator))
        if self._queue is None or batch_size != self._batch_size:
            self._start(batch_size)
        item = self._queue.get()
        if isinstance(item, BaseException):  # the gatherer's failure, raised where the step can report it
            raise item
        return self._to_device(*item)

    def _start(self, batch_size: int) -> None:
        self.close()
        self._stop = threading.Event()
        self._batch_size, self._queue = batch_size, queue.Queue(maxsize=self.prefetch_batches)
        # Seeded from the process's stream, which a checkpoint restores: a resumed run draws anew rather
        # than repeat the batches its first start drew.
        seed = int(torch.randint(2**62, (1,)).item())
        threading.Thread(target=self._gather_ahead, args=(batch_size, seed, self._queue, self._stop),
                         name="wgan-batches", daemon=True).start()

    def _gather_ahead(self, batch_size: int, seed: int, out: queue.Queue, stop: threading.Event) -> None:
        generator = torch.Generator().manual_seed(seed)
        try:
            while not stop.is_set():
                item = self._gather(batch_size, generator)
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, who raises it
            out.put(exc)

    def _gather(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self), (batch_size,), generator=generator)
        # Pinned memory from torch's caching host allocator, which reuses a buffer only once the copies
        # that read it have finished; where no CUDA is (tests, a CPU run) it is ordinary memory.
        images = torch.empty((batch_size, *self.x.shape[1:]), dtype=self.x.dtype,
                             pin_memory=self.device.type == "cuda")
        torch.index_select(self.x, 0, idx, out=images)
        return images, idx

    def _to_device(self, images: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = images.to(self.device, non_blocking=True)
        y = None if self.y is None else self.y[idx.to(self.y.device, non_blocking=True)]
        return to_model_space(x), y

    def close(self) -> None:
        """Stop the gathering thread (it also ends with the process)."""
        self._stop.set()
        self._queue = None


def streamed(data: Data, device: torch.device) -> StreamedData:
    """`data` with its images left where they are and its labels on `device`, batched onto `device`."""
    values = {f.name: getattr(data, f.name) for f in fields(Data)}
    values["y"] = None if data.y is None else data.y.to(device)
    return StreamedData(**values, device=torch.device(device))
