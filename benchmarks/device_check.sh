#!/usr/bin/env bash
# The GPU check, one command per stage, each sized to finish within 9 minutes on one H200:
#
#   benchmarks/device_check.sh --out DIR              # main: notebook 01 at paper (synthetic)
#   benchmarks/device_check.sh --out DIR --skip       # skip: notebook 02 at paper (synthetic),
#                                                     # its three runs at once on the GPU
#   benchmarks/device_check.sh --out DIR --second     # second: benchmarks/run.py at paper, then
#                                                     # optimizations.py (fused Adam, compile)
#
#   options: [--device auto|cuda|cpu] [--max-steps N] [--repeats N]
#            [--bench-profile paper|cpu|smoke] [--runs-dir DIR]
#
# The main and skip stages train the report's step counts (2,975 synthetic scenes, 123 steps
# per epoch: Seq2Seg 45 epochs, 5,535 steps; U-Net 30, 3,690; no skip at 5e-5 and at 1e-4) and
# write Table 1 and the skip ablation (one H200 took 6 minutes for notebook 01; notebook 02's
# three runs one after the other would take 10); benchmarks/device_plan.py prints the estimate
# of each stage first, from those measured times.
# Everything a stage writes goes under --out DIR (default scratch/device-check): reports/
# (tables, figures, executed notebooks, benchmarks.md), runs/ (each run's config.json and
# metrics.jsonl; checkpoints stay in --runs-dir, default runs/), log.txt, and
# device_check.tar.gz holding all of it. A stage that fails is reported and the next runs;
# the seconds of every stage are printed at the end whatever happened.
# Missing Python packages are named at once: on a machine with internet run
# benchmarks/device_wheels.sh, which fills .whl/; this script installs .whl/ first.
# On a CPU, benchmarks/device_check.sh --device cpu --max-steps 2 --bench-profile smoke
# --out DIR runs every line of this path (add --skip or --second for the others; on 2 cores
# about 2 minutes for the main stage, 3 for the skip stage, 2 for the second, its
# optimizations.py compiling four models).
# Python: $SEQSEG_PYTHON, else .venv/bin/python, else python3 (a GPU image's own PyTorch).
# A copy without .git: SEQSEG_COMMIT=<commit> names the code in the tables' provenance.
set -uo pipefail
cd "$(dirname "$0")/.."

device=auto
max_steps=()
repeats=2  # the second stage's rounds: 3 would not fit 9 minutes (device_plan.py)
bench_profile=paper
runs_dir="$PWD/runs"
out="$PWD/scratch/device-check"
stage_name=main
usage() { sed -n '2,/^[^#]/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --max-steps) max_steps=(--max-steps "$2"); shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --bench-profile) bench_profile="$2"; shift 2 ;;
    --runs-dir) mkdir -p "$2"; runs_dir="$(cd "$2" && pwd)"; shift 2 ;;
    --out) mkdir -p "$2"; out="$(cd "$2" && pwd)"; shift 2 ;;
    --skip) stage_name=skip; shift ;;
    --second) stage_name=second; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "device_check.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
mkdir -p "$out/reports" "$out/runs" "$runs_dir"
exec > >(tee -a "$out/log.txt") 2>&1

if [ -z "${SEQSEG_PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then SEQSEG_PYTHON="$PWD/.venv/bin/python"; else SEQSEG_PYTHON=python3; fi
fi
export SEQSEG_PYTHON
if compgen -G ".whl/*.whl" > /dev/null; then
  site="$(mktemp -d)"
  "$SEQSEG_PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$site" .whl/*.whl || echo "== some wheels of .whl/ did not install"
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# run_all.sh runs the notebooks on the device that "auto" resolves to
[ "$device" = cpu ] && export CUDA_VISIBLE_DEVICES=""

# -- what is missing, said at once ------------------------------------------------------------
# (the packages the notebooks and the library import when they run, then every module of the
# library itself, which names whatever else it imports at its top)
missing="$("$SEQSEG_PYTHON" - <<'EOF'
import importlib
import pkgutil

modules = ["torch", "transformers", "scipy", "pandas", "tabulate", "matplotlib", "seaborn",
           "papermill", "nbformat", "ipykernel", "ipywidgets", "cityscapesscripts", "mlxtend",
           "pycocotools", "submitit"]
missing = []
for name in modules:
    try:
        importlib.import_module(name)
    except ImportError:
        missing.append(name)
if "torch" not in missing:
    import seqseg_lib

    for module in pkgutil.walk_packages(seqseg_lib.__path__, "seqseg_lib."):
        try:
            importlib.import_module(module.name)
        except ImportError as error:  # also a name that the installed version lacks
            name = error.name or module.name
            missing += [name] if name not in missing else []
print(" ".join(missing))
EOF
)"
if [ -n "$missing" ]; then
  echo "device_check.sh: missing Python packages: $missing" >&2
  echo "  on a machine with internet: benchmarks/device_wheels.sh (fills .whl/), then bring" >&2
  echo "  .whl/ along with the repository: this script installs it first" >&2
  exit 2
fi
"$SEQSEG_PYTHON" - <<'EOF'
import torch
from seqseg_lib.devices import describe_device, fast_bfloat16
print(f"== device: {describe_device('auto')}; torch {torch.__version__}; "
      f"fast bfloat16: {fast_bfloat16('auto')}", flush=True)
EOF

# -- stages -----------------------------------------------------------------------------------
timings=()
failed=0
stage() {  # stage NAME COMMAND...: run it, say how it ended and in how many seconds
  local name="$1" start=$SECONDS status
  shift
  echo "== stage $name"
  "$@"
  status=$?
  if [ $status -eq 0 ]; then
    timings+=("$name: $((SECONDS - start)) s")
  else
    timings+=("$name: FAILED (exit $status) after $((SECONDS - start)) s")
    failed=1
  fi
  echo "== stage $name: ${timings[-1]#"$name: "}"
}
finish() {
  # the run records beside the reports, then one archive of everything
  for run in "$runs_dir"/*/; do
    [ -f "$run/config.json" ] || continue
    mkdir -p "$out/runs/$(basename "$run")"
    cp "$run"/config.json "$run"/metrics.jsonl "$out/runs/$(basename "$run")/" 2>/dev/null
  done
  tar -czf "$out/device_check.tar.gz.tmp" -C "$out" reports runs log.txt 2>/dev/null \
    && mv "$out/device_check.tar.gz.tmp" "$out/device_check.tar.gz"
  echo "== seconds per stage:"
  printf '   %s\n' "${timings[@]:-none ran}"
  echo "== outputs: $out"
}
trap finish EXIT

estimate() {  # the plan says its estimate; over the limit, the stage still runs
  "$SEQSEG_PYTHON" benchmarks/device_plan.py "$@" \
    || echo "== estimated over the limit: the stage runs all the same"
}
estimate --stage "$stage_name" --repeats "$repeats" "${max_steps[@]}"
case "$stage_name" in
  main)
    stage "notebook 01 (paper, synthetic)" ./run_all.sh --profile paper --dataset synthetic \
      --runs-dir "$runs_dir" --reports-dir "$out/reports" "${max_steps[@]}" \
      notebooks/01_*.ipynb ;;
  skip)
    stage "notebook 02 (paper, synthetic)" ./run_all.sh --profile paper --dataset synthetic \
      --runs-dir "$runs_dir" --reports-dir "$out/reports" "${max_steps[@]}" --jobs 3 \
      notebooks/02_*.ipynb ;;
  second)
    stage "benchmarks ($bench_profile)" "$SEQSEG_PYTHON" benchmarks/run.py \
      --profile "$bench_profile" --device "$device" --repeats "$repeats" --out "$out/reports"
    # whether fused Adam and torch.compile pay on this device (the engine turns them on for
    # CUDA by default: fused Adam; compile on request), one experiment of each kind
    stage "optimizations ($bench_profile)" "$SEQSEG_PYTHON" benchmarks/optimizations.py \
      --profile "$bench_profile" --device "$device" --repeats "$repeats" --out "$out/reports" \
      --experiments seq2seg unet mnist-easy hungarian-unet ;;
esac
exit $failed
