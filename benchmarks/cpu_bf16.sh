#!/usr/bin/env bash
# fp32 against bf16 on a CPU, from a source checkout: `bash benchmarks/cpu_bf16.sh [DATA_DIR] [REPEATS]`.
# Runs `wgan bench --device cpu --preset quick` REPEATS times (each times fp32 and bf16 side by side in one
# process, so a busy machine slows both alike) and prints the median of each row and of the bf16/fp32 ratio.
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
DATA=${1:-data/fashion-mnist}
REPEATS=${2:-3}
OUTDIR=${OUT:-/tmp/wgan-bench-cpu}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUTDIR"
grep -m1 "model name" /proc/cpuinfo 2>/dev/null
for i in $(seq "$REPEATS"); do
  "$PYTHON" -m wgan bench --device cpu --preset quick --seconds "${SECONDS_PER_VARIANT:-8}" --data "$DATA" \
    --json "$OUTDIR/bench-quick-$i.json" 2>&1
done
"$PYTHON" - "$OUTDIR" "$REPEATS" <<'PY'
import json, statistics, sys
runs = [json.load(open(f"{sys.argv[1]}/bench-quick-{i}.json"))["results"] for i in range(1, int(sys.argv[2]) + 1)]
rows = {}
for results in runs:
    for r in results:
        rows.setdefault((r["variant"], r["precision"]), []).append(r["iterations_per_s"])
for (variant, precision), its in rows.items():
    print(f"{variant:<16} {precision:<5} median {statistics.median(its):6.2f} gen it/s  of {', '.join(f'{v:.2f}' for v in its)}")
ratios = [next(r["iterations_per_s"] for r in rs if r["variant"] == "eager fused" and r["precision"] == "bf16") /
          next(r["iterations_per_s"] for r in rs if r["variant"] == "eager fused" and r["precision"] != "bf16") for rs in runs]
print(f"bf16 / fp32 (eager fused): median {statistics.median(ratios):.2f}x  of {', '.join(f'{v:.2f}' for v in ratios)}")
PY
