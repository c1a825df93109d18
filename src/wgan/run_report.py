"""Pictures and curves of a run, rebuilt from its directory at any time (also mid-training)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Callable

import numpy as np
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from wgan import checkpoint, exported, rundir
from wgan.animation import save_gif, write_animation
from wgan.errors import UserError, os_reason
from wgan.files import atomic_write, bounded_lines, pyplot, read_small_text
from wgan.rundir import is_training_record, run_status, sample_frames
from wgan.walks import grid_frames, render_walk


def missing_losses_note(run_dir: Path, records: list[dict]) -> str:
    """Why losses.png could not be drawn from `records` (which hold no loss record)."""
    path = Path(run_dir) / rundir.METRICS
    if not path.exists():
        return f"no {rundir.LOSSES_PLOT}: {path} does not exist (the run has not logged yet)"
    lines = sum(1 for line in bounded_lines(path, rundir.RECORD_LIMIT_BYTES) if line.strip())
    unreadable = lines - len(records)
    return (f"no {rundir.LOSSES_PLOT}: {path} holds no loss records" +
            (f" ({unreadable} of {lines} lines are not wgan records)" if unreadable else " yet"))


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Exponential moving average, bias-corrected so the first points are not pulled to zero."""
    if len(values) == 0:
        return values
    alpha = 2.0 / (max(window, 1) + 1.0)
    out = np.empty_like(values, dtype=float)
    acc, norm = 0.0, 0.0
    for i, v in enumerate(values):
        acc = (1 - alpha) * acc + alpha * v
        norm = (1 - alpha) * norm + alpha
        out[i] = acc / norm
    return out


def _raw_and_smoothed(ax, x, values, color: str, label: str, window: int) -> None:
    """The raw values faint behind their moving average: noise visible, trend readable."""
    ax.plot(x, values, color=color, alpha=0.25, linewidth=0.8)
    ax.plot(x, smooth(values, window), color=color, linewidth=1.6, label=label)


def plot_losses(records: list[dict], path: Path) -> bool:
    """Generator and critic loss on two y-axes; the critic's Wasserstein estimate (with the exact W1 where
    logged) and the gradient penalty each on their own panel."""
    train = [r for r in records if is_training_record(r)]
    if not train:
        return False
    plt = pyplot()
    steps = np.array([r["step"] for r in train])
    window = max(1, len(train) // 30)
    pen = np.array([r.get("penalty", 0.0) for r in train], dtype=float)
    has_penalty = bool(np.any(pen != 0))
    panels = 3 if has_penalty else 2
    fig, axes = plt.subplots(panels, 1, figsize=(9, 3.2 * panels), sharex=True)
    ax1, ax3 = axes[0], axes[1]
    ax2 = ax1.twinx()
    for ax, key, color, label in ((ax1, "loss_generator", "tab:blue", "generator loss"),
                                  (ax2, "loss_critic", "tab:red", "critic loss")):
        _raw_and_smoothed(ax, steps, np.array([r[key] for r in train], dtype=float), color, label, window)
        ax.set_ylabel(label, color=color)
        ax.tick_params(axis="y", labelcolor=color)
    smoothed = f"; faint: raw, bold: moving average over ~{window} records" if window > 1 else ""
    ax1.set_title(f"Generator and critic loss{smoothed}")
    w = np.array([r["wasserstein"] for r in train], dtype=float)
    _raw_and_smoothed(ax3, steps, w, "tab:green", "critic's estimate E[D(x)] - E[D(G(z))]", window)
    exact = [r for r in records if "w1_exact" in r]
    if exact:
        ax3.plot([r["step"] for r in exact], [r["w1_exact"] for r in exact], "o-", color="black", markersize=3,
                 label="exact W1 (POT)")
    ax3.set_ylabel("Wasserstein estimate")
    ax3.legend(loc="best", fontsize=8)  # never over the few exact-W1 points
    ax3.set_title("Wasserstein estimate")
    if has_penalty:
        _raw_and_smoothed(axes[2], steps, pen, "tab:purple", "gradient penalty (before its weight)", window)
        axes[2].set_ylabel("penalty")
        axes[2].set_title("Gradient penalty")
        axes[2].legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("generator step")
    fig.tight_layout()
    # written beside and renamed over: never through a link put in the run in the plot's place
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return True


# Fields of a metric record that are bookkeeping, not a metric
_NOT_METRICS = set(rundir.BOOKKEEPING)
# Direction of the better value, for the plot titles
_LOWER_IS_BETTER = {"fcd", "fid", "kid", "w1_exact"}
_HIGHER_IS_BETTER = {"class_coverage", "classes_covered", "cond_accuracy", "precision", "recall", "coverage",
                     "precision_inception", "recall_inception", "coverage_inception"}
_ONE_IS_REAL = {"density", "density_inception"}  # 1: samples as crowded among real images as real images are


def metric_records(records: list[dict]) -> list[dict]:
    """The evaluation records (training records carry losses, evaluation records do not)."""
    return [r for r in records if not is_training_record(r) and any(k not in _NOT_METRICS for k in r)]


def metric_keys(records: list[dict]) -> list[str]:
    keys: dict[str, None] = {}
    for r in metric_records(records):
        for k, v in r.items():
            if k not in _NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys[k] = None
    return list(keys)


def metric_columns(records: list[dict]) -> list[tuple[str, int | None]]:
    """Every (metric, sample count) logged, in order: an FCD of 1,000 samples and one of 10,000 are different
    numbers (the smaller sample's is biased up), so each count is a column and a curve of its own."""
    columns: dict[tuple[str, int | None], None] = {}
    for r in metric_records(records):
        for k in metric_keys([r]):
            columns[(k, r.get("samples", {}).get(k))] = None
    return list(columns)


def _base(key: str) -> str:
    return key.removesuffix(rundir.RAW_SUFFIX)


def _column_label(key: str, samples: int | None) -> str:
    n = f" ({samples:,} samples)" if samples else ""
    return f"{key}{n}"


def _better(key: str) -> str:
    key = _base(key)
    return (" - lower is better" if key in _LOWER_IS_BETTER else
            " - higher is better" if key in _HIGHER_IS_BETTER else
            " - about 1 for real images" if key in _ONE_IS_REAL else "")


def _series(evals: list[dict], key: str, samples: int | None, xkey: str) -> list[tuple[float, float]]:
    return sorted((r[xkey], r[key]) for r in evals
                  if key in r and xkey in r and r.get("samples", {}).get(key) == samples)


def plot_quality(records: list[dict], path: Path) -> bool:
    """Each logged metric over generator steps (left) and over wall-clock seconds (right): one curve per
    sample count, the raw generator's (dashed) beside its moving average's."""
    evals = metric_records(records)
    columns = metric_columns(records)
    bases = list(dict.fromkeys(_base(k) for k, _ in columns))
    if not bases:
        return False
    plt = pyplot()
    fig, axes = plt.subplots(len(bases), 2, figsize=(10, 2.8 * len(bases)), squeeze=False)
    for row, base in zip(axes, bases):
        curves = [(k, n) for k, n in columns if _base(k) == base]
        for ax, xkey, xlabel in ((row[0], "step", "generator step"), (row[1], "time_s", "training seconds")):
            values = []
            for i, (key, n) in enumerate(curves):
                pts = _series(evals, key, n, xkey)
                if not pts:
                    continue
                x, y = zip(*pts)
                values += y
                raw = key.endswith(rundir.RAW_SUFFIX)
                label = ("raw generator" if raw else "generator" if any(k.endswith(rundir.RAW_SUFFIX) for k, _ in curves)
                         else base) + (f", {n:,} samples" if n else "")
                ax.plot(x, y, "o--" if raw else "o-", color=f"C{i}", markersize=4, alpha=0.6 if raw else 1.0,
                        label=label)
                ax.annotate(f"{y[-1]:.4g}", (x[-1], y[-1]), textcoords="offset points", xytext=(4, 4), fontsize=8)
            if values:
                ax.margins(y=0.15)  # room for the last value's label under the title
                if all(isinstance(v, int) for v in values):  # classes covered: no 2.5 on the axis
                    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            if xkey == "step":
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no step 19.25 with one evaluation
            if len(curves) > 1 and ax.get_legend_handles_labels()[0]:  # an axis with no points has nothing to name
                ax.legend(fontsize=7, loc="best")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(base)
            ax.grid(alpha=0.3)
        row[0].set_title(f"{base}{_better(base)}", fontsize=10, loc="left")
    fig.tight_layout()
    # written beside and renamed over: never through a link put in the run in the plot's place
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return True


def make_timelapse(frames: list[Path], path: Path, frame_ms: int = 250, last_frame_ms: int = 2000) -> bool:
    """One GIF frame per sample grid, in order, with the step number burnt in; loops forever."""
    if not frames:
        return False
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1: only the small bitmap font
        font = ImageFont.load_default()
    images = []
    for frame in frames:
        img = Image.open(frame).convert("RGB")
        step = rundir.sample_step(frame)
        label = f"step {step}"
        # never narrower than its label: GIF writers merge identical frames, and the label is what differs
        width = max(img.width, int(ImageDraw.Draw(img).textlength(label, font=font)) + 8)
        canvas = Image.new("RGB", (width, img.height + 20), "white")
        ImageDraw.Draw(canvas).text((4, 2), label, fill="black", font=font)
        canvas.paste(img, (0, 20))
        images.append(canvas.quantize(colors=255))
    durations = [frame_ms] * (len(images) - 1) + [last_frame_ms]
    save_gif(path, images, durations)
    return True


# The report's latent walk: small, so that building a report stays a matter of seconds on a CPU.
REPORT_WALK_POINTS = 4
REPORT_WALK_FRAMES = 8  # between neighbouring points
REPORT_WALKS = 4  # a 2 x 2 grid; a conditional generator's one walk is shown in every class instead
REPORT_WALK_FRAME_MS = 100


def walk_source(run_dir: Path) -> Path | None:
    """What the run's generator is loaded from (its newest checkpoint, else its generator.safetensors)."""
    found = checkpoint.list_checkpoints(run_dir / rundir.CHECKPOINTS)
    if found:
        return found[-1]
    return run_dir / rundir.GENERATOR if (run_dir / rundir.GENERATOR).is_file() else None


def make_walk(run_dir: Path, path: Path, notes: list[str]) -> bool:
    """walk.gif: a latent walk of the run's newest generator (its moving average where the run keeps one, as
    `wgan sample` does), made again only when the generator is newer than the GIF. Runs without a
    generator yet, and 2-D point models, have none; a generator that cannot be loaded is a note."""
    source = walk_source(run_dir)
    if source is None:
        return False
    if path.is_file() and path.stat().st_mtime_ns >= source.stat().st_mtime_ns:
        return True
    try:
        generator = exported.load_generator(run_dir, "cpu").generator
    except UserError as exc:
        notes.append(f"no {rundir.WALK}: {exc}")
        return False
    if generator.shape.point_dim:
        return False
    walk = render_walk(generator, num_walks=1 if generator.shape.conditional else REPORT_WALKS,
                       num_points=REPORT_WALK_POINTS, frames_per_segment=REPORT_WALK_FRAMES, seed=0)
    write_animation(path, grid_frames(walk).numpy(), REPORT_WALK_FRAME_MS)
    return True


# ---------------------------------------------------------------------------------------------
# report.html: one page, images inlined, opens from disk with no server

INLINE_LIMIT_BYTES = 16 * 2**20  # bigger files (a long run's GIF) are linked beside the page instead
_MIME = {".png": "image/png", ".gif": "image/gif"}


class Html(str):
    """Markup made by the functions below. Every other value put into the page is text, and `_text` escapes it:
    a run's files (config.json, metrics.jsonl, truncation.json, neighbours-*.json, its folder's name) are the
    user's or anyone's, and none of their values may become markup."""


def _text(value) -> Html:
    """The one way a value reaches the page: markup made here stays as it is, anything else is escaped."""
    return value if isinstance(value, Html) else Html(html.escape(_fmt(value)))


def _el(tag: str, *children, **attributes) -> Html:
    """<tag attributes>children</tag>, every child and attribute value escaped unless it is markup made here;
    an attribute named class_ is `class`."""
    attrs = "".join(f' {name.rstrip("_")}="{html.escape(str(value))}"' for name, value in attributes.items())
    return Html(f"<{tag}{attrs}>" + "".join(_text(c) for c in children) + f"</{tag}>")


def _void(tag: str, **attributes) -> Html:
    attrs = "".join(f' {name.rstrip("_")}="{html.escape(str(value))}"' for name, value in attributes.items())
    return Html(f"<{tag}{attrs}>")


def own_file(path: Path) -> bool:
    """A regular file in the run directory itself, not a link to one elsewhere: a report shows the run's own
    files, never what a symbolic link put in the run points at."""
    return path.is_file() and not path.is_symlink()


def _img(path: Path, alt: str, run_dir: Path) -> Html:
    if path.stat().st_size <= INLINE_LIMIT_BYTES:
        src = f"data:{_MIME[path.suffix]};base64," + base64.b64encode(path.read_bytes()).decode()
    else:
        src = path.relative_to(run_dir).as_posix()
    return _el("figure", _void("img", src=src, alt=alt), _el("figcaption", alt))


def _figures(run_dir: Path, images: list[tuple[Path, str]]) -> Html:
    """The run's own image files among `images`, side by side."""
    return _el("div", *[_img(p, alt, run_dir) for p, alt in images if own_file(p)], class_="figs")


def _table(header: list[str], rows: list[list]) -> Html:
    head = _el("thead", _el("tr", *[_el("th", h) for h in header])) if any(header) else ""
    return _el("table", head, _el("tbody", *[_el("tr", *[_el("td", c) for c in row]) for row in rows]))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def _timing_rows(run_dir: Path, records: list[dict], config: dict) -> list[list[str]]:
    train = [r for r in records if is_training_record(r)]
    evals = metric_records(records)
    rows = []
    if train:
        last = train[-1]
        # a run stopped between log records is at its checkpoint's step, past its last record
        step = max(last["step"], rundir.newest_checkpoint_step(run_dir) or 0)
        rows.append(["generator steps", f"{step:,} of {config.get('steps', '?'):,}"
                     if isinstance(config.get("steps"), int) else f"{step:,}"])
        rows.append(["wall-clock time", f"{last.get('time_s', 0):.1f} s"])
        speeds = [r["critic_images_per_s"] for r in train if "critic_images_per_s" in r]
        if speeds:
            rows.append(["critic images / s (median of log intervals)", f"{float(np.median(speeds)):,.0f}"])
        rows.append(["last losses (critic / generator)", f"{last['loss_critic']:.4g} / {last['loss_generator']:.4g}"])
        rows.append(["last Wasserstein estimate", f"{last['wasserstein']:.4g}"])
    eval_s = [r["eval_s"] for r in evals if "eval_s" in r]
    if eval_s:
        rows.append(["time spent in evaluations", f"{sum(eval_s):.1f} s over {len(eval_s)} evaluations"])
    return rows


def write_html(run_dir: Path, records: list[dict], written: dict[str, Path]) -> Path:
    """report.html: config, final grid, timelapse, plots, metric table and timing, in one file. Built from
    elements (`_el`), so that every value of the run's files is escaped in one place."""
    config = rundir.read_config(run_dir) or {}
    frames = [f for f in sample_frames(run_dir) if own_file(f)]
    evals = metric_records(records)
    title = f"wgan run {run_dir.name}"
    parts = [_el("h1", title),
             _el("p", config.get("preset", ""), " \u00b7 ", config.get("dataset", ""), " \u00b7 model ",
                 config.get("model", ""), " \u00b7 loss ", config.get("loss", ""), " \u00b7 status: ",
                 _el("b", run_status(run_dir)), class_="sub")]
    timing = _timing_rows(run_dir, records, config)
    if timing:
        parts += [_el("h2", "Run"), _table([], timing)]
    columns = metric_columns(records)
    if evals:
        rows = []
        for key, n in columns:
            r = next(r for r in reversed(evals) if key in r and r.get("samples", {}).get(key) == n)
            rows.append([f"{key}{_better(key)}", r[key], r["step"], n])
        parts += [_el("h2", "Quality"), _table(["metric", "last value", "at step", "samples"], rows)]
    images = [(frames[-1], f"final fixed-noise samples ({frames[-1].stem})")] if frames else []
    images += [(written[k], alt) for k, alt in (("timelapse", "timelapse of the fixed-noise samples"),
                                               ("quality", "metrics over steps and wall-clock time"),
                                               ("losses", "losses, Wasserstein estimate and penalty"))
               if k in written]
    if "walk" in written:
        images.append((written["walk"], f"latent walk: {REPORT_WALK_POINTS} fixed noise points, spherical "
                                        f"interpolation, {REPORT_WALK_FRAMES} frames between each, looping"))
    if images:
        parts += [_el("h2", "Pictures"), _figures(run_dir, images)]
    parts += _neighbour_parts(run_dir) + _truncation_parts(run_dir)
    if evals:
        header = ["step", "time (s)"] + [_column_label(k, n) for k, n in columns]
        rows = [[r["step"], r.get("time_s")] +
                [r.get(k) if r.get("samples", {}).get(k) == n else "" for k, n in columns] for r in evals]
        parts += [_el("h2", "Every evaluation"), _table(header, rows)]
    if config:
        parts += [_el("h2", "Configuration"), _table(["option", "value"], [[k, v] for k, v in config.items()])]
    style = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;"
             "text-align:left;font-size:.9em}th{background:#f3f3f3}.sub{color:#555}"
             ".figs{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figure img{max-width:100%;"
             "image-rendering:pixelated;border:1px solid #ddd}figcaption{font-size:.85em;color:#555}")
    head = _el("head", _void("meta", charset="utf-8"), _el("title", title), _el("style", Html(style)))
    page = f"<!DOCTYPE html>\n<html lang=en>{head}<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    path = run_dir / rundir.REPORT
    # written beside and renamed over, so a browser reloading mid-build never sees half a page
    atomic_write(path, lambda f: f.write(page.encode("utf-8")))
    return path


# ---------------------------------------------------------------------------------------------
# What `wgan eval --neighbours` and `--truncation-sweep` left in the run directory


EVAL_RECORD_LIMIT_BYTES = 1 << 20  # what `wgan eval` writes is a few kB


def _read_json(path: Path) -> dict | None:
    """A record written by `wgan eval`, or None when absent or unreadable (a report never fails on one)."""
    text = read_small_text(path, EVAL_RECORD_LIMIT_BYTES)
    record = None if text is None else rundir.parse_json(text)
    return record if isinstance(record, dict) else None


_SPACE_NAMES = {"classifier": "the domain classifier's features", "pixel": "pixel space"}


def _neighbour_parts(run_dir: Path) -> list[Html]:
    parts = []
    for space, description in _SPACE_NAMES.items():
        files = {k: run_dir / name for k, name in rundir.neighbour_files(space).items()}
        record = _read_json(files["record"])
        if record is None or not own_file(files["picture"]):
            continue
        figures = [(files["picture"], f"generated samples (left) and their nearest "
                                       f"training images in {description}, step {_fmt(record.get('step'))}"),
                   (files["distances"], "distance to the nearest training image: generated vs held-out")]
        parts += [_el("h2", f"Nearest training images ({description})"), _el("p", _el("b", record.get("verdict", ""))),
                  _figures(run_dir, figures)]
    return parts


def _truncation_parts(run_dir: Path) -> list[Html]:
    record = _read_json(run_dir / rundir.TRUNCATION_RECORD)
    plot = run_dir / rundir.TRUNCATION_PLOT
    if record is None or not isinstance(record.get("rows"), list):
        return []
    columns = ["fcd", "class_coverage", "precision", "recall"]
    rows = [["none" if r.get("truncation") is None else r.get("truncation")] + [r.get(c) for c in columns]
            for r in record["rows"] if isinstance(r, dict)]
    return [_el("h2", "Truncation sweep"),
            _el("p", record.get("samples"), " samples per psi, generator at step ", record.get("step"), class_="sub"),
            _table(["psi"] + columns, rows),
            _figures(run_dir, [(plot, "precision, recall, class coverage and FCD against psi")])]


def build_report(run_dir: Path, notes: list[str] | None = None) -> dict[str, Path]:
    """Rebuild losses.png, quality.png, timelapse.gif, walk.gif and report.html from the run directory, at any
    time (also while the run trains, or after it was killed); returns what was written. What could not be
    made, and why, is appended to `notes`."""
    run_dir = Path(run_dir)
    written = {}
    records = rundir.read_records(run_dir)
    if plot_losses(records, run_dir / rundir.LOSSES_PLOT):
        written["losses"] = run_dir / rundir.LOSSES_PLOT
    if plot_quality(records, run_dir / rundir.QUALITY_PLOT):
        written["quality"] = run_dir / rundir.QUALITY_PLOT
    if make_timelapse(sample_frames(run_dir), run_dir / rundir.TIMELAPSE):
        written["timelapse"] = run_dir / rundir.TIMELAPSE
    if make_walk(run_dir, run_dir / rundir.WALK, [] if notes is None else notes):
        written["walk"] = run_dir / rundir.WALK
    written["html"] = write_html(run_dir, records, written)
    return written


def report_run(run_dir: Path, say: Callable[[str], None] = print) -> dict[str, Path]:
    """`wgan report`: build_report for a run directory, each file written and each note said; returns the
    files written."""
    run_dir = rundir.check_run_dir(Path(run_dir))
    notes: list[str] = []
    try:
        written = build_report(run_dir, notes)
    except OSError as exc:
        where = exc.filename or run_dir
        raise UserError(f"--run {run_dir}: cannot write the report's files there ({where}: {os_reason(exc)}); make "
                        "room, or copy the run to a writable folder and report on the copy") from None
    for path in written.values():
        say(f"wrote {path}")
    if "losses" not in written:  # say why, reading the log again only then
        say(f"note: {missing_losses_note(run_dir, rundir.read_records(run_dir))}")
    for note in notes:
        say(f"note: {note}")
    return written
