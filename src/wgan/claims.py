"""The papers' claims, checked on their 2-D data with exact optimal transport.

On 2-D data the true Wasserstein-1 distance between the generator's samples and the real ones can be
computed exactly (POT's network simplex), so what the two papers argue can be measured rather than
believed. `wgan claims` trains each toy dataset with the gradient penalty (WGAN-GP's toy settings)
and with weight clipping (WGAN's settings), and at `checks` steps (step 0, then spaced geometrically)
measures, on the same test points and the same generated points (the same noise each time):

- w1: the exact W1 between the two point sets;
- estimate: the critic's E[D(real)] - E[D(fake)] on them, what a WGAN logs as its Wasserstein estimate;
- lipschitz: the smallest L with D(x) - D(y) <= L |x - y| for every real x and generated y;
- bound = estimate / L. Kantorovich-Rubinstein duality on the two point sets puts it at or below w1
  for *any* critic (u_i = D(x_i)/L, v_j = D(y_j)/L is a feasible dual of the transport problem), so
  this inequality is exact and checked every time; bound / w1 says how close the trained critic is
  to the optimal one (1.0);
- the norm of the critic's input gradient at interpolates, one epsilon per pair, as the penalty
  draws them.
After the first generator step and at the end it also measures the share of critic weights at the
extremes of their layer's range. The exact W1 between two samples of the real data (test and training
split) is the floor: what a perfect generator would score with this many points.

Every verdict but the duality bound is about what training does, so each has a minimum run length
(MIN_* below); a shorter run gets "inconclusive" with the reason instead of a verdict either way.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from scipy import stats
from torch import nn

from wgan import losses
from wgan.claim_options import (
    DEFAULT_CHECKS, DEFAULT_DATASETS, DEFAULT_LOSSES, DEFAULT_POINTS, DEFAULT_SEED, DEFAULT_STEPS, DEFAULT_WIDTH,
    LOSS_LABELS, LOSS_SETTINGS, MIN_STEPS_TRAINED, MIN_STEPS_TRAINING, MIN_TRACKING_CHECKS, TOY_DATASETS)
from wgan.config import preset_config
from wgan.data import load_dataset
from wgan.distributed import memory_bytes
from wgan.errors import UserError
from wgan.files import atomic_write, pyplot
from wgan.metrics import exact_w1
from wgan.models import ModelShape
from wgan.rundir import next_run_dir
from wgan.training.fast import make_step
from wgan.training.plan import RunPlan, make_plan
from wgan.training.state import TrainState, check_model_memory
from wgan.training.step import generator_iteration

EXTREME_SHARE = 0.99  # a weight is "at the extreme" when |w| >= 0.99 * the largest |w| of its layer
DUALITY_SLACK = 1e-9  # float64 rounding allowed in bound <= w1


@dataclass
class Check:
    step: int
    w1: float
    estimate: float
    lipschitz: float
    bound: float
    grad_norm_mean: float
    grad_norm_std: float


@dataclass
class ClaimsRun:
    dataset: str
    loss: str
    checks: list[Check] = field(default_factory=list)
    w1_floor: float = math.nan  # exact W1 between two samples of the real data: a perfect generator's score
    extreme_weight_share: float = math.nan  # at the end
    # after the first generator step (its critic updates, each clipped): what clipping the initial
    # weights does, before training has moved them
    extreme_weight_share_first_step: float = math.nan
    weights: np.ndarray | None = None  # the critic's weights at the end, each divided by its layer's max |w|
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(dataset=self.dataset, loss=self.loss, seconds=self.seconds, w1_floor=self.w1_floor,
                    extreme_weight_share=self.extreme_weight_share,
                    extreme_weight_share_first_step=self.extreme_weight_share_first_step,
                    checks=[dataclasses.asdict(c) for c in self.checks])


# ---------------------------------------------------------------------------------------------
# The measurements: small functions of a critic and two point sets


def kantorovich_bound(real_scores: torch.Tensor, fake_scores: torch.Tensor, real: torch.Tensor,
                      fake: torch.Tensor) -> tuple[float, float, float]:
    """(estimate, L, estimate / L) for critic scores on real points x_i and generated points y_j.

    L = max_ij (D(x_i) - D(y_j)) / |x_i - y_j|: D / L then satisfies every constraint of the dual of
    the transport problem between the two point sets, so estimate / L <= W1 of those point sets.
    Computed in float64."""
    r, f = real_scores.detach().double().flatten().cpu(), fake_scores.detach().double().flatten().cpu()
    estimate = float(r.mean() - f.mean())
    dist = torch.cdist(real.double().cpu(), fake.double().cpu())
    lipschitz = float(((r[:, None] - f[None, :]) / dist.clamp_min(1e-300)).max())
    if lipschitz <= 0:  # every real point scores below every generated one: the estimate is <= 0 <= W1
        return estimate, lipschitz, min(estimate, 0.0)
    return estimate, lipschitz, estimate / lipschitz


def gradient_norms(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """|grad_x D(x_hat)| at x_hat = eps * real + (1 - eps) * fake, one eps per pair."""
    x_hat = losses.interpolate(real, fake, eps).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)
    return grad.flatten(1).norm(dim=1)


def critic_weights(critic: nn.Module) -> list[torch.Tensor]:
    """The critic's weight matrices and kernels (not biases or norm scales)."""
    return [p.detach() for p in critic.parameters() if p.dim() >= 2]


def extreme_weight_share(critic: nn.Module) -> float:
    """Share of the critic's weights with |w| >= 0.99 * the largest |w| of their layer. Under weight
    clipping that largest value is c, and the WGAN-GP paper (Sec. 3, Fig. 1b) shows most weights there."""
    at_extreme = total = 0
    for w in critic_weights(critic):
        a = w.abs()
        at_extreme += int((a >= EXTREME_SHARE * a.max()).sum())
        total += a.numel()
    return at_extreme / total


# ---------------------------------------------------------------------------------------------
# Training with checks


def check_steps(steps: int, checks: int) -> list[int]:
    """Step 0 and then `checks - 1` steps spaced geometrically up to `steps`. W1 changes on a log time
    scale (most of its fall comes in the first few hundred steps), so evenly spaced checks would put
    nearly all of them on the plateau, where differences are within sampling noise."""
    start = max(1.0, steps / 200)
    later = np.geomspace(start, steps, num=max(checks - 1, 1)) if checks > 1 else np.array([steps])
    return sorted({0, steps, *(int(round(s)) for s in later)})


def _measure(state, step: int, real: torch.Tensor, z: torch.Tensor, eps: torch.Tensor) -> Check:
    generator, critic = state.generator, state.critic
    with torch.no_grad():
        fake = generator(z).float()
        real_scores, fake_scores = critic(real).float(), critic(fake).float()
    estimate, lipschitz, bound = kantorovich_bound(real_scores, fake_scores, real, fake)
    norms = gradient_norms(critic, real, fake, eps)
    w1 = exact_w1(fake.cpu().numpy(), real.cpu().numpy())
    return Check(step, w1, estimate, lipschitz, bound, float(norms.mean()), float(norms.std()))


def claims_plan(dataset: str, loss: str, *, width: int, device: str, seed: int, gp_weight: float | None = None,
                critic_steps_boosted: int = 0) -> RunPlan:
    """The run of the toy preset of `dataset` with `loss`'s settings, planned as `wgan train` plans a run.
    `gp_weight`: the penalty's lambda instead of the preset's 0.1 (the paper's image models use 10);
    `critic_steps_boosted`: the WGAN reference code's schedule of extra critic updates (see TrainConfig)."""
    over = dict(LOSS_SETTINGS[loss], critic_steps_boosted=critic_steps_boosted)
    if loss == "gp" and gp_weight is not None:
        over["gp_weight"] = gp_weight
    return make_plan(preset_config(dataset, device=device, seed=seed, width=width, tensorboard=False, **over))


def train_and_check(plan: RunPlan, *, steps: int, checks: int, points: int,
                    note: Callable[[str], None] = print) -> ClaimsRun:
    """Train the run `plan` (a claims_plan) for `steps` generator steps, checking as it goes."""
    cfg = plan.cfg
    dataset, loss = cfg.dataset, cfg.loss  # LOSS_SETTINGS' names are the config's loss names
    state = TrainState.build(plan)
    step, fast_note = make_step(state, plan.step.fast)
    if fast_note:
        note(fast_note)
    test = load_dataset(dataset, split="test")
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    real = test.x[torch.randperm(len(test), generator=gen)[:points]].float().to(state.device)
    z = torch.randn(len(real), cfg.latent_dim, generator=gen).to(state.device)
    eps = torch.rand(len(real), generator=gen).to(state.device)
    other_real = state.data.x[torch.randperm(len(state.data), generator=gen)[:len(real)].to(state.data.x.device)]
    run = ClaimsRun(dataset, loss, w1_floor=exact_w1(other_real.float().cpu().numpy(), real.cpu().numpy()))
    schedule = set(check_steps(steps, checks))
    start = time.perf_counter()
    for s in range(steps + 1):
        if s in schedule:
            c = _measure(state, s, real, z, eps)
            run.checks.append(c)
            note(f"{dataset} {loss:<4} step {s:>6}/{steps}: W1 {c.w1:.4f}  estimate {c.estimate:.4g}  "
                 f"L {c.lipschitz:.4g}  estimate/L {c.bound:.4f}  |grad| {c.grad_norm_mean:.3f}")
        if s < steps:
            generator_iteration(step, cfg, s)
            if s == 0:
                run.extreme_weight_share_first_step = extreme_weight_share(state.critic)
    run.seconds = time.perf_counter() - start
    run.extreme_weight_share = extreme_weight_share(state.critic)
    run.weights = torch.cat([(w / w.abs().max()).flatten().cpu() for w in critic_weights(state.critic)]).numpy()
    return run


# ---------------------------------------------------------------------------------------------
# The claims, judged from the measurements


@dataclass(frozen=True)
class Verdict:
    claim: str
    source: str
    criterion: str
    measured: str
    holds: bool | None  # None: the runs are too short to tell, for `reason`
    reason: str = ""

    @property
    def outcome(self) -> str:
        return "inconclusive" if self.holds is None else "holds" if self.holds else "does not hold"


def verdict_line(v: Verdict) -> str:
    """The verdict as `wgan claims` prints it."""
    label = {"holds": "holds", "does not hold": "DOES NOT HOLD", "inconclusive": "INCONCLUSIVE"}[v.outcome]
    text = f"{label}: {v.claim} ({v.source})\n    {v.criterion}; measured: {v.measured}"
    return text + (f"\n    {v.reason}" if v.reason else "")


def _pearson(a: list[float], b: list[float]) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return math.nan
    return float(stats.pearsonr(a, b).statistic)


def trained_checks(run: ClaimsRun) -> list[Check]:
    """The checks after step 0: before any training the critic is a random function, not an estimate
    of anything."""
    return [c for c in run.checks if c.step > 0]


def correlation(run: ClaimsRun, key: str = "estimate") -> float:
    """Pearson r between the exact W1 and `key` over a run's checks after step 0."""
    trained = trained_checks(run)
    return _pearson([c.w1 for c in trained], [getattr(c, key) for c in trained])


def correlation_text(run: ClaimsRun) -> str:
    """r(estimate, W1) for tables and titles: a number only where there are enough checks to read it."""
    if len(trained_checks(run)) < MIN_TRACKING_CHECKS:
        return "n/a (too few checks)"
    r = correlation(run)
    return "n/a (constant)" if math.isnan(r) else f"{r:.2f}"


def too_short(runs: list[ClaimsRun], min_steps: int, min_checks: int = 0) -> str:
    """Why `runs` are too short for a verdict needing `min_steps` generator steps and `min_checks`
    checks after step 0; "" when every run is long enough."""
    steps = min(r.checks[-1].step for r in runs)
    checks = min(len(trained_checks(r)) for r in runs)
    needs = []
    if steps < min_steps:
        needs.append(f"at least {min_steps} generator steps (these runs have {steps}; raise --steps)")
    if checks < min_checks:
        needs.append(f"at least {min_checks} checks after step 0 (these runs have {checks}; raise --checks)")
    return f"too short to tell: needs {' and '.join(needs)}" if needs else ""


def judge(runs: list[ClaimsRun]) -> list[Verdict]:
    verdicts = []
    by_loss = {loss: [r for r in runs if r.loss == loss] for loss in LOSS_SETTINGS}

    def fmt(rs: list[ClaimsRun], value: Callable[[ClaimsRun], float | str], spec: str = ".3f") -> str:
        return ", ".join(f"{r.dataset.removeprefix('toy-')} {r.loss} {format(value(r), spec)}" for r in rs)

    def verdict(claim, source, criterion, measured, holds: Callable[[], bool], reason: str) -> Verdict:
        return Verdict(claim, source, criterion, measured, None if reason else holds(), reason)

    if runs:
        worst = max(max(c.bound - c.w1 for c in r.checks) for r in runs)
        verdicts.append(Verdict(
            "any critic's estimate / L is a lower bound on the exact W1 (Kantorovich-Rubinstein duality)",
            "WGAN, Arjovsky et al. 2017, eq. 2", "estimate / L <= W1 at every check",
            f"largest (estimate / L - W1) over {sum(len(r.checks) for r in runs)} checks: {worst:.2e}",
            worst <= DUALITY_SLACK * max(1.0, max(c.w1 for r in runs for c in r.checks))))
    for loss, loss_runs in by_loss.items():  # one verdict per loss: the two critics can differ here
        if loss_runs:
            verdicts.append(verdict(
                f"the critic's estimate tracks the Wasserstein distance during training ({LOSS_LABELS[loss]})",
                "WGAN, Sec. 4.2 and Fig. 3", "Pearson r(estimate, exact W1) over the checks after step 0 >= 0.8 in every run",
                ", ".join(f"{r.dataset.removeprefix('toy-')} {r.loss} {correlation_text(r)}" for r in loss_runs),
                lambda: all(correlation(r) >= 0.8 for r in loss_runs),
                too_short(loss_runs, MIN_STEPS_TRAINING, MIN_TRACKING_CHECKS)))
    if gp := by_loss["gp"]:
        verdicts.append(verdict(
            "the gradient penalty's critic has gradient norm about 1 between real and generated points",
            "WGAN-GP, Gulrajani et al. 2017, Prop. 1 and Sec. 4", "mean |grad D| at interpolates within 0.2 of 1 at the end",
            fmt(gp, lambda r: r.checks[-1].grad_norm_mean),
            lambda: all(abs(r.checks[-1].grad_norm_mean - 1) <= 0.2 for r in gp), too_short(gp, MIN_STEPS_TRAINED)))
        verdicts.append(verdict(
            "the penalised critic is close to the optimal one, so its estimate is close to W1 itself",
            "WGAN-GP, Sec. 4", "estimate / W1 between 0.8 and 1.2 at the end",
            fmt(gp, lambda r: r.checks[-1].estimate / r.checks[-1].w1),
            lambda: all(0.8 <= r.checks[-1].estimate / r.checks[-1].w1 <= 1.2 for r in gp),
            too_short(gp, MIN_STEPS_TRAINED)))
    if clip := by_loss["clip"]:
        # Clipping PyTorch's default initialisation (uniform within +-1/sqrt(fan_in), wider than c)
        # already puts most weights at +-c, so the share after the first step is shown beside the
        # judged one: only their difference is training's doing.
        share = lambda r: f"{r.extreme_weight_share_first_step:.2f} -> {r.extreme_weight_share:.2f}"
        verdicts.append(verdict(
            "weight clipping pushes most critic weights to the clipping bounds +-c",
            "WGAN-GP, Sec. 3 and Fig. 1b",
            "share of weights at +-c (|w| >= 0.99 c) > 0.5 at the end under clipping; shown: after the first "
            "generator step -> at the end",
            fmt(clip, share, "") + ("; with the penalty: " + fmt(gp, share, "") if gp else ""),
            lambda: all(r.extreme_weight_share > 0.5 for r in clip), too_short(clip, MIN_STEPS_TRAINED)))
    if runs:
        verdicts.append(verdict(
            "training lowers the Wasserstein distance between generated and real data",
            "WGAN and WGAN-GP", "exact W1 at the end below half of W1 at step 0 in every run",
            fmt(runs, lambda r: r.checks[-1].w1 / r.checks[0].w1, ".2f") + " (end / start)",
            lambda: all(r.checks[-1].w1 < 0.5 * r.checks[0].w1 for r in runs), too_short(runs, MIN_STEPS_TRAINING)))
    return verdicts


# ---------------------------------------------------------------------------------------------
# Output


def format_runs_table(runs: list[ClaimsRun]) -> str:
    head = ["dataset", "loss", "W1 start", "W1 end", "W1 floor", "estimate end", "L end", "estimate/L / W1", "r(est, W1)",
            "|grad| end", "weights at extremes (step 1 -> end)"]
    rows = []
    for r in runs:
        first, last = r.checks[0], r.checks[-1]
        rows.append([r.dataset, r.loss, f"{first.w1:.4f}", f"{last.w1:.4f}", f"{r.w1_floor:.4f}", f"{last.estimate:.4g}",
                     f"{last.lipschitz:.4g}", f"{last.bound / last.w1:.3f}", correlation_text(r),
                     f"{last.grad_norm_mean:.3f} +- {last.grad_norm_std:.3f}",
                     f"{r.extreme_weight_share_first_step:.3f} -> {r.extreme_weight_share:.3f}"])
    return _markdown([head] + rows)


def format_verdicts(verdicts: list[Verdict]) -> str:
    rows = [["claim", "source", "criterion", "measured", "verdict"]]
    rows += [[v.claim, v.source, v.criterion, v.measured, f"{v.outcome}: {v.reason}" if v.reason else v.outcome]
             for v in verdicts]
    return _markdown(rows)


def _markdown(rows: list[list[str]]) -> str:
    line = lambda row: "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"  # |grad| is not a column
    return "\n".join([line(rows[0]), "|" + " --- |" * len(rows[0])] + [line(row) for row in rows[1:]])


def plot(runs: list[ClaimsRun], path: Path) -> None:
    """One row per dataset: W1 and the critic's numbers over training for each loss, then the critic's
    final weight histograms."""
    plt = pyplot()
    datasets = list(dict.fromkeys(r.dataset for r in runs))
    loss_names = list(dict.fromkeys(r.loss for r in runs))
    fig, axes = plt.subplots(len(datasets), len(loss_names) + 1, figsize=(4.6 * (len(loss_names) + 1), 3.4 * len(datasets)),
                             squeeze=False)
    for row, dataset in enumerate(datasets):
        for col, loss in enumerate(loss_names):
            ax = axes[row][col]
            run = next((r for r in runs if r.dataset == dataset and r.loss == loss), None)
            if run is None:
                ax.axis("off")
                continue
            steps = [c.step for c in run.checks]
            ax.plot(steps, [c.w1 for c in run.checks], "k-", lw=2, label="exact W1 (POT)")
            ax.axhline(run.w1_floor, color="k", ls=":", lw=1, label="W1 floor (real vs real)")
            ax.set_xscale("symlog", linthresh=max(1, steps[-1] / 200))
            ax.plot(steps, [c.bound for c in run.checks], "C2--", label="estimate / L (<= W1)")
            if loss == "clip":  # the clipped critic's estimate is tiny: its own axis
                twin = ax.twinx()
                twin.plot(steps, [c.estimate for c in run.checks], "C1-", label="critic estimate (right)")
                twin.tick_params(axis="y", colors="C1")
                ax.plot([], [], "C1-", label="critic estimate (right axis)")
            else:
                ax.plot(steps, [c.estimate for c in run.checks], "C1-", label="critic estimate")
            ax.set_title(f"{dataset}, {loss}: r = {correlation_text(run)}", fontsize=10)
            ax.set_xlabel("generator step")
            ax.legend(fontsize=7)
        ax = axes[row][-1]
        for loss in loss_names:
            run = next((r for r in runs if r.dataset == dataset and r.loss == loss), None)
            if run is not None and run.weights is not None:
                ax.hist(run.weights, bins=60, range=(-1, 1), alpha=0.6, log=True,
                        label=f"{loss}: {run.extreme_weight_share:.0%} at the extremes "
                              f"({run.extreme_weight_share_first_step:.0%} after step 1)")
        ax.set_title(f"{dataset}: critic weights at the end", fontsize=10)
        ax.set_xlabel("weight / largest |weight| of its layer")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_claims(*, datasets: Sequence[str] = DEFAULT_DATASETS, loss_names: Sequence[str] = DEFAULT_LOSSES,
               steps: int = DEFAULT_STEPS, checks: int = DEFAULT_CHECKS, points: int = DEFAULT_POINTS,
               width: int = DEFAULT_WIDTH, device: str = "auto", seed: int = DEFAULT_SEED, runs_dir: Path = Path("runs"),
               gp_weight: float | None = None,
               critic_steps_boosted: int = 0,
               note: Callable[[str], None] = print) -> tuple[Path, list[Verdict]]:
    """Train and check every (dataset, loss); write claims.json, claims.md and claims.png to a new run
    directory; return it and the verdicts."""
    bad = [d for d in datasets if d not in TOY_DATASETS]
    if bad:
        raise UserError(f"--datasets {','.join(bad)}: the claims are checked on the 2-D toy data; choose from "
                        f"{', '.join(TOY_DATASETS)}")
    bad = [n for n in loss_names if n not in LOSS_SETTINGS]
    if bad:
        raise UserError(f"--losses {','.join(bad)}: choose from {', '.join(LOSS_SETTINGS)}")
    for flag, value, least in (("--steps", steps, 1), ("--checks", checks, 2),
                               ("--points", points, 10), ("--width", width, 1)):
        if value < least:
            raise UserError(f"{flag} {value}: must be >= {least}")
    if gp_weight is not None and not (math.isfinite(gp_weight) and gp_weight > 0):
        raise UserError(f"--gp-weight {gp_weight}: must be a number > 0")
    memory = memory_bytes(torch.device("cpu"))
    need = 2 * 8 * points * points  # exact W1: the float64 cost matrix and the transport plan, points x points
    if need > memory / 4:
        raise UserError(f"--points {points}: exact optimal transport between {points:,} and {points:,} points takes "
                        f"{need / 2**30:,.1f} GiB, more than a quarter of this machine's {memory / 2**30:.0f} GiB; "
                        "use fewer (the paper's 2,000)")
    # Every option is checked before anything is written or trained.
    plans = [claims_plan(d, loss, width=width, device=device, seed=seed, gp_weight=gp_weight,
                         critic_steps_boosted=critic_steps_boosted) for d in datasets for loss in loss_names]
    for plan in plans:  # the toy data's 2-D points: the models' sizes are known before any data is drawn
        cfg = plan.cfg
        check_model_memory(cfg, ModelShape(latent_dim=cfg.latent_dim, width=cfg.width, point_dim=2, channels=0,
                                           image_size=0, critic_norm=cfg.critic_norm), plan.device)
    out = next_run_dir(Path(runs_dir), "claims")
    settings = dict(datasets=datasets, losses=loss_names, steps=steps, checks=checks, points=points, width=width,
                    device=device, seed=seed, gp_weight=gp_weight, critic_steps_boosted=critic_steps_boosted)
    runs: list[ClaimsRun] = []

    def write_json(verdicts: list[Verdict] | None) -> None:
        record = dict(settings=settings, complete=verdicts is not None, runs=[r.to_dict() for r in runs],
                      verdicts=[dataclasses.asdict(v) for v in verdicts or []])
        atomic_write(out / "claims.json", lambda f: f.write(json.dumps(record, indent=1).encode()))

    for plan in plans:
        runs.append(train_and_check(plan, steps=steps, checks=checks, points=points, note=note))
        write_json(None)  # a long job stopped part-way keeps the runs it finished
    verdicts = judge(runs)
    write_json(verdicts)
    text = (f"# The papers' claims on 2-D data\n\n`wgan claims` with {json.dumps(settings)}\n\n"
            f"{format_verdicts(verdicts)}\n\n{format_runs_table(runs)}\n")
    (out / "claims.md").write_text(text)
    plot(runs, out / "claims.png")
    return out, verdicts
