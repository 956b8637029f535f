#!/usr/bin/env bash
# The GPU check, one command: on a machine with one GPU, the benchmark suite at the paper
# profile, then the paper profile of notebooks 01 and 02 on the synthetic scenes (and on
# CamVid when $CAMVID_ROOT or ../shared/data/camvid exists), writing tables and figures into
# the reports folder like any run. Prints the seconds of each stage as it ends, so that a run
# cut short still says where its time went.
#
#   benchmarks/device_check.sh [--device auto|cuda|cpu] [--max-steps N] [--repeats N]
#                              [--bench-profile paper|cpu|smoke] [--runs-dir DIR]
#                              [--reports-dir DIR]
#
# --max-steps stops every training run after N steps (see run_all.sh). On a CPU,
#   benchmarks/device_check.sh --device cpu --max-steps 2 --bench-profile smoke \
#       --runs-dir /tmp/check/runs --reports-dir /tmp/check/reports
# executes every line of this path in about ten minutes.
# Python: $SEQSEG_PYTHON, else .venv/bin/python, else python3 (a GPU image's own PyTorch).
# Wheels in .whl/ (the packages such an image lacks, fetched by benchmarks/device_wheels.sh
# on a machine with internet) are installed into a scratch site-packages first.
set -euo pipefail
cd "$(dirname "$0")/.."

device=auto
max_steps=()
repeats=5
bench_profile=paper
runs_dir="$PWD/runs"
reports_dir="$PWD/reports"
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --max-steps) max_steps=(--max-steps "$2"); shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --bench-profile) bench_profile="$2"; shift 2 ;;
    --runs-dir) mkdir -p "$2"; runs_dir="$(cd "$2" && pwd)"; shift 2 ;;
    --reports-dir) mkdir -p "$2"; reports_dir="$(cd "$2" && pwd)"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "device_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ -z "${SEQSEG_PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then SEQSEG_PYTHON="$PWD/.venv/bin/python"; else SEQSEG_PYTHON=python3; fi
fi
export SEQSEG_PYTHON
if compgen -G ".whl/*.whl" > /dev/null; then
  site="$(mktemp -d)"
  "$SEQSEG_PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# run_all.sh runs the notebooks on the device that "auto" resolves to
[ "$device" = cpu ] && export CUDA_VISIBLE_DEVICES=""

"$SEQSEG_PYTHON" - <<'EOF'
import torch
from seqseg_lib.devices import describe_device, fast_bfloat16
print(f"== device: {describe_device('auto')}; torch {torch.__version__}; "
      f"fast bfloat16: {fast_bfloat16('auto')}", flush=True)
EOF

timings=()
stage() {  # stage NAME COMMAND...: run it, print and remember its seconds
  local name="$1" start=$SECONDS
  shift
  echo "== stage $name"
  "$@"
  timings+=("$name: $((SECONDS - start)) s")
  echo "== stage $name done in $((SECONDS - start)) s"
}

stage "benchmarks ($bench_profile)" "$SEQSEG_PYTHON" benchmarks/run.py --profile "$bench_profile" \
  --device "$device" --repeats "$repeats" --out "$reports_dir"
common=(--profile paper --runs-dir "$runs_dir" --reports-dir "$reports_dir" "${max_steps[@]}")
stage "notebooks 01-02 (paper, synthetic)" ./run_all.sh "${common[@]}" --dataset synthetic \
  notebooks/01_*.ipynb notebooks/02_*.ipynb
camvid="${CAMVID_ROOT:-../shared/data/camvid}"
if [ -d "$camvid" ]; then
  stage "notebooks 01-02 (paper, camvid)" ./run_all.sh "${common[@]}" --dataset camvid \
    --data-root "$camvid" notebooks/01_*.ipynb notebooks/02_*.ipynb
else
  echo "== no CamVid at $camvid: its stage is skipped"
fi

echo "== seconds per stage:"
printf '   %s\n' "${timings[@]}"
