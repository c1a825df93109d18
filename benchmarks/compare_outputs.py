"""Proof that a restructuring changed no output: the same `wgan` commands, with fixed seeds on the CPU, run by
the code of two commits, their files compared byte for byte (a .safetensors file by its tensors and metadata),
and their stdout, stderr and exit codes after the paths and timings of each run are normalised away.

    python benchmarks/compare_outputs.py OLD_COMMIT [NEW_COMMIT]     # NEW default: the working tree

Each commit is exported (git archive; the working tree: its tracked and untracked, not ignored files) to a
temporary folder, and every command runs as `python -m wgan ...` with this interpreter and PYTHONPATH at
that tree's src. The inputs are the same for both: the shipped generators, and one tiny run trained on the
Fashion-MNIST files by the OLD code (its checkpoint exported, sampled and evaluated by both). Each tree has a
cache folder (XDG_CACHE_HOME) of its own, so each decodes the data with its own code. Prints a table,
command by command, and exits 0 only if every output is the same. About 2 CPU-minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKTREE = "WORKTREE"
DATA = REPO.parent / "shared" / "data" / "fashion-mnist"

# The run every tree reads: the smallest that still has a checkpoint and a moving average of the generator.
TRAIN = ["train", "--preset", "quick", "--no-conditional", "--width", "8", "--latent-dim", "16", "--batch-size", "8",
         "--critic-steps", "1", "--log-every-steps", "1", "--sample-every-steps", "0", "--no-tensorboard",
         "--device", "cpu", "--no-progress", "--steps", "2", "--seed", "0"]


@dataclass(frozen=True)
class Case:
    """One command; `files`: the outputs it writes under OUT (compared by sha256)."""

    name: str
    argv: tuple[str, ...]
    files: tuple[str, ...] = ()


def cases(classes: int) -> list[Case]:
    """OUT stands for the tree's output folder, RUN for the shared run: both are filled in per tree."""
    cond = ("sample", "--weights", "fashion-mnist-cond", "--device", "cpu")
    plain = ("sample", "--weights", "fashion-mnist", "--device", "cpu")
    listed = [
        Case("sample grid, every class", (*cond, "--num", "20", "--out", "OUT/cond.png"), ("cond.png",)),
        Case("sample array, every class", (*cond, "--num", "20", "--seed", "3", "--out", "OUT/cond.npz"), ("cond.npz",)),
        Case("sample grid, truncated", (*cond, "--num", "20", "--truncation", "0.7", "--out", "OUT/trunc.png"),
             ("trunc.png",)),
        Case("sample array, truncated", (*cond, "--num", "20", "--truncation", "0.7", "--seed", "5", "--out",
                                         "OUT/trunc.npz"), ("trunc.npz",)),
        Case("sample unconditional grid", (*plain, "--num", "16", "--out", "OUT/plain.png"), ("plain.png",)),
        Case("sample unconditional, truncated", (*plain, "--num", "9", "--truncation", "0.5", "--out",
                                                 "OUT/plain-trunc.npz"), ("plain-trunc.npz",)),
        Case("walk, every class", (*cond, "--walk", "3", "--frames", "2", "--num", "2", "--out", "OUT/walk.gif"),
             ("walk.gif",)),
        Case("walk, one class, truncated", (*cond, "--walk", "2", "--frames", "3", "--num", "4", "--label", "bag",
                                            "--truncation", "0.8", "--frame-ms", "40", "--out", "OUT/walk-bag.gif"),
             ("walk-bag.gif",)),
        Case("sample from the run", ("sample", "--run", "RUN", "--num", "8", "--device", "cpu", "--out",
                                     "OUT/run.npz"), ("run.npz",)),
        Case("export the run", ("export", "--run", "RUN", "--out", "OUT/G.safetensors"), ("G.safetensors",)),
        Case("sample the export", ("sample", "--weights", "OUT/G.safetensors", "--num", "8",
                                   "--device", "cpu", "--out", "OUT/export.png"), ("export.png",)),
        Case("eval fcd", ("eval", "--run", "RUN", "--metrics", "fcd", "--num", "200", "--no-append", "--device",
                          "cpu")),
    ]
    listed.append(Case(f"API per class (save_samples, {classes} classes)", ("API",),
                       tuple(f"class-{k}.{s}" for k in range(classes) for s in ("npz", "png"))))
    bad = [("--num", "0"), ("--truncation", "0"), ("--frames", "4"), ("--label", "Hat"), ("--walk", "1"),
           ("--num", "x"), ("--walk", "2", "--frame-ms", "5")]
    for extra in bad:
        out = "OUT/bad.gif" if "--walk" in extra else "OUT/bad.npz"
        listed.append(Case(f"error {' '.join(extra)}", (*cond, *extra, "--out", out)))
    listed += [Case("error --out x.jpg", (*cond, "--out", "OUT/x.jpg")),
               Case("error export --out G.pt", ("export", "--run", "RUN", "--out", "OUT/G.pt"))]
    return listed


# The API's samples of each class, written by the tree's own wgan (run with the tree's PYTHONPATH).
API_SCRIPT = """
import sys, wgan
g = wgan.load_generator("fashion-mnist-cond")
for k, name in enumerate(g.classes):
    g.save_samples(f"{sys.argv[1]}/class-{k}.npz", 6, labels=name, truncation=0.9, seed=k)
    g.save_samples(f"{sys.argv[1]}/class-{k}.png", 4, labels=k, seed=k)
print(len(g.classes), "classes")
"""


def export_tree(commit: str, dest: Path) -> Path:
    """The sources of `commit` (or of the working tree) in `dest`."""
    dest.mkdir(parents=True)
    if commit == WORKTREE:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                check=True, capture_output=True).stdout.split(b"\0")
        for rel in filter(None, (p.decode() for p in listed)):
            if (REPO / rel).is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, dest / rel)
    else:
        archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


@dataclass
class Tree:
    label: str
    root: Path
    out: Path
    cache: Path

    def run(self, argv, *, run_dir: Path, cwd: Path) -> tuple[int, str, str]:
        env = dict(os.environ, PYTHONPATH=str(self.root / "src"), XDG_CACHE_HOME=str(self.cache),
                   OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONHASHSEED="0")
        if argv == ("API",):
            command = [sys.executable, "-c", API_SCRIPT, str(self.out)]
        else:
            args = [a.replace("OUT", str(self.out)).replace("RUN", str(run_dir)) for a in argv]
            command = [sys.executable, "-m", "wgan", *args]
        proc = subprocess.run(["nice", "-n", "19", *command], cwd=cwd, env=env, capture_output=True, text=True)
        return proc.returncode, proc.stdout, proc.stderr


def normalise(text: str, tree: Tree, scratch: Path) -> str:
    """The output without what differs from run to run: the tree's folders, timings, progress bars."""
    text = text.replace(str(tree.out), "OUT").replace(str(tree.cache), "CACHE").replace(str(tree.root), "TREE")
    text = text.replace(str(scratch), "SCRATCH")
    text = re.sub(r"\d+(\.\d+)?\s*(s|ms|min|seconds)\b", "T", text)
    lines = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]  # a progress bar's last state, if any
    return "\n".join(line for line in lines if not re.search(r"\d+/\d+ \[|it/s|sample/s", line))


def digest(path: Path) -> str:
    """sha256 of the file's bytes; of a .safetensors file's content, since its header is written in the order
    of a Rust hash map, which changes from process to process (one export, written twice, differs)."""
    if not path.is_file():
        return "missing"
    raw = path.read_bytes()
    if path.suffix != ".safetensors":
        return hashlib.sha256(raw).hexdigest()
    size = int.from_bytes(raw[:8], "little")
    header, data = json.loads(raw[8:8 + size]), raw[8 + size:]
    h = hashlib.sha256(json.dumps(header.pop("__metadata__", {}), sort_keys=True).encode())
    for name in sorted(header):
        start, end = header[name].pop("data_offsets")
        h.update(json.dumps([name, header[name]], sort_keys=True).encode() + data[start:end])
    return h.hexdigest()


def compare(old: Tree, new: Tree, case: Case, run_dir: Path, scratch: Path) -> tuple[bool, str]:
    results = [tree.run(case.argv, run_dir=run_dir, cwd=scratch) for tree in (old, new)]
    (code_a, out_a, err_a), (code_b, out_b, err_b) = results
    why = []
    if code_a != code_b:
        why.append(f"exit {code_a} vs {code_b}")
    if normalise(out_a, old, scratch) != normalise(out_b, new, scratch):
        why.append("stdout")
    if normalise(err_a, old, scratch) != normalise(err_b, new, scratch):
        why.append("stderr")
    for name in case.files:
        a, b = digest(old.out / name), digest(new.out / name)
        if a != b or a == "missing":
            why.append(f"{name} {'missing' if a == 'missing' else 'bytes'}")
    summary = f"exit {code_a}" + (f", {len(case.files)} file(s)" if case.files else "")
    if code_a == 2:
        summary += f": {err_a.strip().splitlines()[-1][:70]}" if err_a.strip() else ""
    return not why, ", ".join(why) or summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the commit before the change (e.g. main)")
    parser.add_argument("new", nargs="?", default=WORKTREE, help="the commit after it (default: the working tree)")
    parser.add_argument("--data", type=Path, default=DATA, help="the Fashion-MNIST IDX files (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and say where it is")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="wgan-compare-"))
    try:
        trees = [Tree(label, export_tree(commit, scratch / label), scratch / f"out-{label}", scratch / f"cache-{label}")
                 for label, commit in (("old", args.old), ("new", args.new))]
        for tree in trees:
            tree.out.mkdir()
        old, new = trees
        code, _, err = old.run((*TRAIN, "--data", str(args.data), "--runs-dir", str(scratch / "runs")),
                               run_dir=scratch, cwd=scratch)
        if code != 0:
            print(f"the OLD code could not train the shared run:\n{err}", file=sys.stderr)
            return 2
        (run_dir,) = (scratch / "runs").iterdir()
        rows = [(case.name, *compare(old, new, case, run_dir, scratch)) for case in cases(classes=10)]
    finally:
        if args.keep:
            print(f"kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    width = max(len(name) for name, _, _ in rows)
    print(f"{args.old} -> {args.new}\n")
    print(f"{'command':<{width}}  result     detail")
    for name, same, detail in rows:
        print(f"{name:<{width}}  {'same' if same else 'DIFFERENT':<9}  {detail}")
    different = sum(not same for _, same, _ in rows)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"\n{len(rows) - different} of {len(rows)} the same ({used.ru_utime + used.ru_stime:.0f} CPU-seconds)")
    return 0 if different == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
