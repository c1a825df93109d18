"""Which convolution calls cost the most GPU time in one fused step (eager), with their shapes."""
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.argv += [] 
from wgan.bench import bench_data
from wgan.config import preset_config, validate
from wgan.fast import FusedWganStep
from wgan.train import Trainer, set_precision

precision = sys.argv[1] if len(sys.argv) > 1 else "bf16"
cfg = validate(preset_config("fashion-gp", batch_size=64, data="data/fashion-mnist", device="cuda", precision=precision))
data, _ = bench_data(cfg, torch.device("cuda"))
t = Trainer.build(cfg, fast=True, data=data)
set_precision(cfg.precision, False)
step = FusedWganStep(cfg, t.generator, t.critic, t.opt_g, t.opt_c, t.data, t.device)
for _ in range(5):
    step()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
    for _ in range(3):
        step()
    torch.cuda.synchronize()
print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cuda_time_total", row_limit=25, max_name_column_width=40,
                                                          max_shapes_column_width=110))
