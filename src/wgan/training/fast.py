"""The GPU fast path: the whole generator iteration captured in one CUDA graph and replayed, and the step
that the data allow where the run's plan (training/plan.py) asks for it: the graph, the fused eager step or the
plain step.

A WGAN step is dozens of small kernels (5 critic updates with a double backward each, then a
generator update); at the paper's batch of 64 the GPU spends most of its time waiting for the host
to launch them. A CUDA graph records those launches once and replays them with one call. What makes
the step capturable: the data are on the GPU and batches are index draws; random numbers come from
the CUDA generator (graph-safe); the optimisers are built with capturable=True (their step counts
live on the device); gradients are zeroed in place, never set to None; and losses are summed into a
device buffer that the loop reads every `log_every_steps`, so nothing in the step syncs the host.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from wgan import augment
from wgan.data import to_model_space
from wgan.data.streamed import StreamedData
from wgan.errors import first_line
from wgan.losses import upcast
from wgan.training.plan import graph_device_reason
from wgan.training.schedule import LinearDecay
from wgan.training.step import WganStep

WARMUP_STEPS = 3  # eager steps before capture: they create optimiser state and let cuDNN pick kernels


def graph_unsupported_reason(state) -> str | None:
    """Why the step cannot be captured, or None if it can."""
    no_graph = graph_device_reason(state.device)
    if no_graph:
        return no_graph
    if state.data.x.device.type != "cuda":
        return "the dataset is not resident on the GPU"
    if not all(g.get("capturable", False) for opt in (state.opt_g, state.opt_c) for g in opt.param_groups):
        return "the optimisers were not built capturable"
    return None


def use_channels_last(state) -> None:
    """NHWC models and data: cuDNN's tensor-core convolutions want NHWC, and with NCHW tensors every
    convolution is wrapped in two layout transposes (a third of the kernels of a DCGAN-64 step)."""
    if state.data.x.dim() != 4:
        return
    state.generator.to(memory_format=torch.channels_last)  # Parameters keep their identity: optimisers are unaffected
    state.critic.to(memory_format=torch.channels_last)
    if state.ema is not None:
        state.ema.module.to(memory_format=torch.channels_last)
    # A new Data, not an in-place change: the caller's dataset (shared by `wgan bench`'s eager and
    # fast variants) keeps its layout.
    state.data = dataclasses.replace(state.data, x=state.data.x.contiguous(memory_format=torch.channels_last))


class CudaGraphStep:
    """Wraps a WganStep: a few eager warm-up steps, then capture once and replay every call after.

    With the lazy penalty (--penalty-every-steps) the iterations differ in which critic updates compute
    the penalty, in a cycle of step.penalty_period() iterations: one graph is captured for each pattern
    and replayed when that pattern is due; the warm-up runs every pattern once, eagerly, first."""

    def __init__(self, step, warmup_steps: int = WARMUP_STEPS):
        self.step = step
        self.warmup_steps = max(warmup_steps, step.penalty_period())
        self.calls = 0
        self.graphs: dict[tuple[float, ...], torch.cuda.CUDAGraph] = {}
        self.failed: str | None = None
        self.side_stream = torch.cuda.Stream()

    @property
    def graph(self) -> torch.cuda.CUDAGraph | None:
        """The first captured graph, or None before (or without) capture."""
        return next(iter(self.graphs.values()), None)

    @property
    def sums(self) -> torch.Tensor:
        return self.step.sums

    @property
    def schedule(self):
        return self.step.schedule

    def __call__(self) -> None:
        self.calls += 1
        pattern = self.step.penalty_pattern()
        graph = self.graphs.get(pattern)
        if graph is not None:
            graph.replay()
            self.step.critic_updates += len(pattern)  # what the step's own call counts, on the host
            return
        if self.failed is not None or self.calls <= self.warmup_steps:
            # Warm-up on a side stream, as capture requires: the allocator then has the memory ready.
            self.side_stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side_stream):
                self.step()
            torch.cuda.current_stream().wait_stream(self.side_stream)
            return
        self._capture(pattern)

    def _capture(self, pattern: tuple[float, ...]) -> None:
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        counted = self.step.critic_updates
        try:
            with torch.cuda.graph(graph):
                self.step()
        except Exception as exc:  # an op that cannot be captured: fall back, say so, stay correct
            self.failed = f"{type(exc).__name__}: {first_line(exc)}"
            print(f"fast path: CUDA graph capture failed ({self.failed}); continuing with the eager step")
            torch.cuda.synchronize()
            self.step.critic_updates = counted  # the failed capture's call did not train
            self.step()
            return
        self.graphs[pattern] = graph
        graph.replay()  # capture records but does not run: this replay is this call's step

    def read_and_reset(self, count: int) -> dict[str, float]:
        return self.step.read_and_reset(count)

    def extra_critic_steps(self, count: int) -> None:
        # Eager, between replays: they update the same parameter and optimiser tensors the graph
        # reads, and draw from the same graph-safe CUDA generator. Rare (the boost schedule).
        self.step.extra_critic_steps(count)


def has_batch_norm(module: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())


class _GroupedBatchNormMixin:
    """Batch norm that, when `groups` > 1, normalises each of `groups` consecutive equal slices of
    the batch with its own statistics and updates the running statistics as `groups` successive
    calls would. So one call on torch.cat of k batches computes exactly what k calls compute,
    forward and backward, and the convolutions around it still see one large batch.

    Why k calls on batch slices, not one call on a (n, k*C, ...) rearrangement: a batch slice is a
    view in both NCHW and channels_last, while the rearrangement copies the activations about four
    times per layer (and through NCHW for channels_last tensors). On a 2-core CPU the slices are
    2-5x faster per layer at DCGAN-64 shapes; on the GPU those copies were most of the layout
    transposes in the DCGAN-64 fast step's profile.
    """

    groups: int = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.groups
        if k == 1 or not self.training:
            return super().forward(x)
        if x.shape[0] % k:
            raise ValueError(f"grouped batch norm: batch of {x.shape[0]} does not split into {k} equal groups")
        # super().forward per slice: the running statistics, num_batches_tracked and momentum=None
        # (cumulative average) are updated exactly as by k separate calls, in the same order.
        return torch.cat([super(_GroupedBatchNormMixin, self).forward(part) for part in x.chunk(k)])


_GROUPED_CLASSES: dict[type, type] = {}


def enable_grouped_batch_norm(module: torch.nn.Module) -> list[torch.nn.Module]:
    """Give every batch-norm layer in `module` the grouped forward (parameters and buffers kept)."""
    layers = []
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(m, _GroupedBatchNormMixin):
            cls = type(m)
            m.__class__ = _GROUPED_CLASSES.setdefault(cls, type("Grouped" + cls.__name__, (_GroupedBatchNormMixin, cls), {}))
        if isinstance(m, _GroupedBatchNormMixin):
            layers.append(m)
    return layers


class batch_norm_groups:
    """Context: the given grouped batch-norm layers treat each batch as `groups` separate batches."""

    def __init__(self, layers: list[torch.nn.Module], groups: int):
        self.layers, self.groups = layers, groups

    def __enter__(self):
        for m in self.layers:
            m.groups = self.groups

    def __exit__(self, *exc):
        for m in self.layers:
            m.groups = 1


class FusedWganStep(WganStep):
    """The plain step's maths and random draws, in fewer and larger kernels.

    - Random numbers are drawn in exactly the plain step's order (per critic step: batch indices,
      noise, penalty epsilon), so both steps see the same batches, noise and interpolates.
    - The generator does not change during the critic steps, so the fakes for all of them come from
      one forward pass over critic_steps * batch noise vectors.
    - Real and fake images go through the critic as one batch.
    Batch-norm layers are switched to grouped statistics for these batched calls, so they normalise
    each original batch on its own, exactly as the separate calls do. The generator step, the
    critic's update from its scores, and the boost schedule's extra critic updates are the plain step's.
    In a CUDA graph, fewer kernels is what remains to win once launch overhead is gone.
    """

    def __init__(self, *args, unfold_first_conv: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.g_norms = enable_grouped_batch_norm(self.generator)
        self.c_norms = enable_grouped_batch_norm(self.critic)
        if self.cfg.uses_penalty and unfold_first_conv:
            unfold_thin_convs(self.critic)

    def _draws(self, weights: tuple[float, ...]):
        """Every critic step's random numbers, in the plain step's order: batch, noise, the real and
        the generated batch's augmentations, the penalty's epsilon (where its weight is not 0)."""
        cfg, n = self.cfg, len(self.data)
        shape = (cfg.batch_size, *self.data.sample_shape)
        idx, z, aug, eps = [], [], [], []
        for weight in weights:
            idx.append(torch.randint(n, (cfg.batch_size,), device=self.device))
            z.append(self._noise())
            aug.append((self._augment_draws(shape), self._augment_draws(shape)))
            penalised = cfg.uses_penalty and weight != 0
            eps.append(torch.rand(self.penalty_batch(cfg.batch_size), device=self.device) if penalised else None)
        return idx, z, aug, eps

    def _batched_critic_step(self, real, fake, labels, eps, weight: float) -> torch.Tensor:
        b = real.shape[0]
        two = None if labels is None else torch.cat([labels, labels])
        with self.autocast, batch_norm_groups(self.c_norms, 2):
            scores, logits = self._scores(torch.cat([real, fake]), two)
        real_scores, fake_scores = scores.split(b)
        # The interpolates get a forward of their own: in one batch with real and fake, the penalty's
        # double backward would run over all three parts, two of them with zero gradient.
        return self._update_critic(real_scores, fake_scores, self._penalty(real, fake, labels, eps, weight=weight),
                                   self._class_loss(None if logits is None else logits[:b], labels))

    def __call__(self) -> None:
        cfg, k = self.cfg, self.cfg.critic_steps
        weights = self.penalty_pattern()
        self.critic_updates += k
        idx, z, aug, eps = self._draws(weights)
        flat_idx = torch.cat(idx)
        reals = to_model_space(self.data.x[flat_idx]).split(cfg.batch_size)
        labels = self.data.y[flat_idx].split(cfg.batch_size) if self.conditional else [None] * k
        with torch.no_grad(), self.autocast, batch_norm_groups(self.g_norms, k):
            all_labels = torch.cat(labels) if self.conditional else None
            fakes = upcast(self.generator(torch.cat(z), all_labels)).split(cfg.batch_size)
        stats = torch.stack([self._batched_critic_step(augment.apply(reals[i], aug[i][0]), augment.apply(fakes[i], aug[i][1]),
                                                       labels[i], eps[i], weights[i])
                             for i in range(k)]).mean(0)
        self._accumulate(stats, self.generator_step())


class UnfoldConv2d(torch.nn.Conv2d):
    """nn.Conv2d computed as unfold + matrix product: same parameters, same result.

    Why: the gradient penalty differentiates the critic's input gradient with respect to the first
    layer's weights. For a layer with one or two input channels, cuDNN runs that double-backward
    convolution as a batch-1 convolution over 64+ channels that took ~0.2 ms per call on an H100,
    about a sixth of the whole fast step. Unfold/fold and a matrix product do the same work in a few
    microseconds.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        ph, pw = self.padding
        x = F.pad(x, (pw, pw, ph, ph))
        # A strided view of all patches (no per-image im2col loop, unlike F.unfold on CUDA).
        patches = x.unfold(2, dh * (kh - 1) + 1, sh).unfold(3, dw * (kw - 1) + 1, sw)[..., ::dh, ::dw]
        out = torch.einsum("nchwij,ocij->nohw", patches, self.weight.to(patches.dtype))
        if self.bias is not None:
            out = out + self.bias.to(out.dtype).view(1, -1, 1, 1)
        return out


def unfold_thin_convs(module: torch.nn.Module, max_in_channels: int = 4) -> int:
    """Give every plain Conv2d with few input channels the UnfoldConv2d forward, in place.

    The Parameter objects are kept, so optimisers, state_dicts and checkpoints are unaffected."""
    count = 0
    for m in module.modules():
        if type(m) is torch.nn.Conv2d and m.in_channels <= max_in_channels and m.groups == 1 \
                and m.padding_mode == "zeros" and isinstance(m.padding, tuple):
            m.__class__ = UnfoldConv2d
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# The choice of step


def make_step(state, fast: bool):
    """The step to run on a TrainState: the plain one, or (`fast`: the plan's StepChoice.fast) the fast path as
    far as the data allow, with a note where they do not. What the data decide is decided here alone."""
    def build(step_cls, graph: bool = False):
        cfg = state.cfg
        schedule = None
        if cfg.lr_decay == "linear":
            schedule = LinearDecay([(state.opt_g, cfg.lr_generator), (state.opt_c, cfg.lr_critic)], cfg.steps,
                                   state.step, on_device=graph)
        return step_cls(cfg, state.generator, state.critic, state.opt_g, state.opt_c, state.data, state.device,
                        ema=state.ema, schedule=schedule, precision=state.precision, start_step=state.step)

    if not fast:
        return build(WganStep), None
    if isinstance(state.data, StreamedData):  # the fused step draws its batches as device indices
        return build(WganStep), "fast path off: the dataset is batched from host memory; using the plain eager step"
    reason = graph_unsupported_reason(state)
    if reason is None:
        use_channels_last(state)  # before the step is built: it replaces state.data
        return CudaGraphStep(build(FusedWganStep, graph=True)), None
    return build(FusedWganStep), f"CUDA graph off: {reason}; using the fused eager step"


def describe_step(step_fn, why: str) -> str:
    """What runs each generator iteration, for log.txt: the fast path or not, and why not (the plan's
    StepChoice.why)."""
    if isinstance(step_fn, CudaGraphStep):
        period = step_fn.step.penalty_period()
        graphs = "one CUDA graph" if period == 1 else f"{period} CUDA graphs, one per lazy-penalty pattern"
        return f"fast: the fused iteration replayed from {graphs} ({step_fn.step.precision.name})"
    if isinstance(step_fn, FusedWganStep):
        return f"fused eager ({step_fn.precision.name})"
    return f"plain eager ({step_fn.precision.name}{'; ' + why if why else ''})"
