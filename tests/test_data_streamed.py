"""Batches gathered on the host ahead of the step (a GPU that cannot hold the dataset): the same draws as
a resident dataset's from the same generator, labels that belong to their images, a thread that keeps up
and hands its failures over. Run here on the CPU (no pinning), where the logic is the same."""

from __future__ import annotations

import pytest
import torch

from wgan.data import Data
from wgan.data.streamed import StreamedData, streamed
from wgan.training.state import placed_data

CPU = torch.device("cpu")


def numbered_data(num: int = 250) -> Data:
    """Image i is filled with the value i and labelled i % 10, so a batch shows whether labels fit their images."""
    x = torch.arange(num).to(torch.uint8).view(num, 1, 1, 1).expand(num, 1, 4, 4).contiguous()
    return Data("numbered", x, torch.arange(num) % 10, 10, [str(i) for i in range(10)], source="memory")


def test_seeded_batches_equal_the_resident_datasets_draws():
    data = numbered_data()
    host = streamed(data, CPU)
    for seed in range(3):
        a = data.batch(16, generator=torch.Generator().manual_seed(seed))
        b = host.batch(16, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_prefetched_batches_keep_labels_with_their_images_and_cover_the_data():
    data = numbered_data()
    host = streamed(data, CPU)
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        x, y = host.batch(32)
        assert x.shape == (32, 1, 4, 4) and x.device == CPU and x.dtype == torch.get_default_dtype()
        pixel = torch.round((x[:, 0, 0, 0] + 1) * 127.5).long()  # back from model space
        assert torch.all(x == x[:, :1, :1, :1])  # each image whole, not mixed with another
        assert torch.equal(pixel % 10, y)
        seen.update(pixel.tolist())
    x, _ = host.batch(7)  # another batch size: a new gatherer, the old one stopped
    assert x.shape[0] == 7
    host.close()
    assert len(seen) > 240  # 1,280 uniform draws of 250 images miss about 2


def test_a_failure_in_the_gathering_thread_reaches_the_step():
    host = streamed(numbered_data(), CPU)
    host.x = host.x[:0]  # no images to draw from: the thread's randint fails
    with pytest.raises(RuntimeError):
        host.batch(4)


def test_a_dataset_that_fits_stays_on_the_cpu_as_it_is():
    data = numbered_data()
    assert placed_data(data, CPU) is data and not isinstance(placed_data(data, CPU), StreamedData)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_dataset_larger_than_the_gpus_free_memory_is_streamed_to_it():
    cuda = torch.device("cuda")
    data = placed_data(numbered_data(), cuda, free_bytes=1)
    assert isinstance(data, StreamedData) and data.x.device == CPU and "pinned buffers" in data.notes[-1]
    x, y = data.batch(32)
    assert x.device.type == "cuda" and y.device.type == "cuda"
    assert placed_data(numbered_data(), cuda, free_bytes=1 << 40).x.device.type == "cuda"


def test_the_plain_step_trains_on_streamed_batches():
    from test_training_step import make_step

    step = make_step()
    step.data = streamed(step.data, CPU)
    for _ in range(3):
        step()
    assert torch.isfinite(step.sums).all() and step.sums.abs().sum() > 0
    step.data.close()
