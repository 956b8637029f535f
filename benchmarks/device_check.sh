#!/usr/bin/env bash
# The GPU check, one stage per call, each sized to finish within 9 minutes on one H100 or H200:
#
#   benchmarks/device_check.sh --next --out DIR       # the first stage of the queue not done
#   benchmarks/device_check.sh --stage NAME --out DIR # a stage by its name
#
#   options: [--device auto|cuda|cpu] [--max-steps N] [--repeats N]
#            [--bench-profile paper|cpu|smoke] [--runs-dir DIR] [--stage-limit SECONDS]
#            [--return DIR]
#
# The queue, benchmarks/device_queue.md, lists the stages in the order they run (what each
# answers: benchmarks/README.md): probe, probe-modes (benchmarks/probe.py), dry-run-02-04,
# dry-run-05-06, dry-run-07, dry-run-08-10 (./run_all.sh --dry-run), table1-camvid-seed0..2,
# skip-camvid-seed0..2 (CamVid at the report's step counts), mnist-paper-embedded,
# mnist-paper-idx (notebook 03 at paper), panoptic-paper (the Hungarian U-Net and notebook
# 08). --next runs the first one not done; over its estimate's 9 minutes it refuses to start
# (split it in the queue, or name it with --stage). The stages outside the queue are still
# there by name: main (notebook 01 at paper, synthetic), skip (--skip: notebook 02, its three
# runs at once) and second (--second: benchmarks/run.py at paper, then optimizations.py).
# benchmarks/device_plan.py prints each stage's estimate first.
# The CamVid stages read data/camvid-packed/ (python -m seqseg_lib data pack-camvid), the
# IDX stage data/mnist/ (the t10k files): git-ignored folders the device call carries.
# Everything a stage writes goes under --out DIR (default scratch/device-check): reports/
# (tables, figures, executed notebooks, benchmarks.md and .csv), runs/ (each run's config.json
# and metrics.jsonl; checkpoints stay in --runs-dir, default runs/), log.txt, the queue with
# the stage's row (device_queue.md, queue_row.json), and device_check.tar.gz holding all of it:
# what comes back (--return DIR2 copies it and log.txt there too: the folder a machine sends
# back). There, python benchmarks/device_queue.py record DIR puts the row into the queue.
# A stage still running after --stage-limit seconds (default 530, all its steps together) is
# stopped, so that the archive is written within a 10-minute call; the seconds of every stage
# are printed at the end whatever happened.
# Missing Python packages are named at once: on a machine with internet run
# benchmarks/device_wheels.sh, which fills .whl/; this script installs .whl/ first.
# On a CPU, benchmarks/device_check.sh --device cpu --max-steps 2 --bench-profile smoke
# --stage NAME --out DIR runs every line of a stage's path (the probe and the dry runs at the
# smoke profile, the probe with 2 steps per measurement; the training stages at paper, cut to 2
# steps).
# Python: $SEQSEG_PYTHON, else .venv/bin/python, else python3 (a GPU image's own PyTorch).
# A copy without .git: SEQSEG_COMMIT=<commit> names the code in the tables' provenance and
# in the queue's row.
set -uo pipefail
cd "$(dirname "$0")/.."

device=auto
max_steps=()
repeats=2  # the second stage's rounds: 3 would not fit 9 minutes (device_plan.py)
bench_profile=paper
runs_dir="$PWD/runs"
out="$PWD/scratch/device-check"
stage_name=main
next=""
stage_limit=530
return_dir=""
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
    --stage) stage_name="$2"; shift 2 ;;
    --next) next=1; shift ;;
    --stage-limit) stage_limit="$2"; shift 2 ;;
    --return) mkdir -p "$2"; return_dir="$(cd "$2" && pwd)"; shift 2 ;;
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
device_said="$("$SEQSEG_PYTHON" - "$device" <<'EOF'
import sys
import torch
from seqseg_lib.devices import describe_device, fast_bfloat16
print(f"{describe_device(sys.argv[1])}; torch {torch.__version__}; "
      f"fast bfloat16: {fast_bfloat16(sys.argv[1])}", flush=True)
EOF
)"
echo "== device: $device_said"
commit() {  # the code's commit: SEQSEG_COMMIT on a copy without .git
  [ -n "${SEQSEG_COMMIT:-}" ] && { echo "$SEQSEG_COMMIT"; return; }
  local head
  head="$(git rev-parse --short HEAD 2>/dev/null)" || { echo unknown; return; }
  # (what the stages write under reports/ is no change of the code)
  [ -n "$(git status --porcelain --untracked-files=no -- . ':!reports' 2>/dev/null)" ] \
    && head="$head+modified"
  echo "$head"
}

# -- which stage ------------------------------------------------------------------------------
queue="${SEQSEG_DEVICE_QUEUE:-benchmarks/device_queue.md}"  # (another: the tests)
if [ -n "$next" ]; then
  stage_name="$("$SEQSEG_PYTHON" benchmarks/device_queue.py next "$queue")" || {
    echo "== every stage of $queue is done"; exit 0; }
  echo "== next stage of the queue: $stage_name"
fi
queued=""  # a stage of the queue has its outcome recorded
grep -q "^| $stage_name |" "$queue" && queued=1
ran=0
camvid="$PWD/data/camvid-packed"
mnist="$PWD/data/mnist"
# the CPU dry run's small switch: the probe with 2 steps per measurement, fewer runs at once
probe_small=()
[ ${#max_steps[@]} -gt 0 ] && probe_small=(--steps 2 --warm 1 --concurrent 1 2 \
  --mode-experiments mnist-easy)

# -- stages -----------------------------------------------------------------------------------
timings=()
failed=0
stage() {  # stage NAME COMMAND...: run it, say how it ended and in how many seconds
  local name="$1" start=$SECONDS status
  shift
  local left=$((deadline - SECONDS))  # --stage-limit is the whole stage's, every step of it
  echo "== stage $name"
  if [ $left -gt 0 ]; then
    timeout --kill-after=15 "$left" "$@"
    status=$?
  else
    status=124
  fi
  [ $status -eq 124 ] && echo "== stage $name: stopped at the stage's --stage-limit $stage_limit s"
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
  if [ -n "$queued" ]; then  # the queue's row, inside the archive: the machine's copy goes
    local state=done
    [ "$failed" = 0 ] && [ "$ran" = 1 ] || state=failed
    "$SEQSEG_PYTHON" benchmarks/device_queue.py mark "$out" --stage "$stage_name" \
      --state "$state" --queue "$queue" --device "${device_said%%;*}" --commit "$(commit)"
  fi
  local kept=(reports runs log.txt)
  [ -f "$out/queue_row.json" ] && kept+=(device_queue.md queue_row.json)
  tar -czf "$out/device_check.tar.gz.tmp" -C "$out" "${kept[@]}" 2>/dev/null \
    && mv "$out/device_check.tar.gz.tmp" "$out/device_check.tar.gz"
  local size
  size=$(stat -c %s "$out/device_check.tar.gz" 2>/dev/null || echo 0)
  echo "== archive: $out/device_check.tar.gz, $((size / 1024)) KiB"
  [ "$size" -lt $((16 * 1024 * 1024)) ] || echo "== the archive is over 16 MiB: it will not come back"
  echo "== seconds per stage:"
  printf '   %s\n' "${timings[@]:-none ran}"
  echo "== outputs: $out"
  [ -z "$return_dir" ] || { sleep 1; cp "$out/device_check.tar.gz" "$out/log.txt" "$return_dir/"; }
}
trap finish EXIT

estimate() {  # the plan says its estimate; over the limit, --next refuses to start the stage
  if "$SEQSEG_PYTHON" benchmarks/device_plan.py "$@"; then return 0; fi
  if [ -n "$next" ] && [ ${#max_steps[@]} -eq 0 ]; then
    echo "== estimated over the limit: not started; split it into several rows of $queue," \
      "or run it by name (--stage $stage_name)"
    queued=""  # nothing ran: its row stays as it was
    exit 3
  fi
  echo "== estimated over the limit: the stage runs all the same"
}
needs() {  # needs PATH WHAT: one line and a failed stage when the data did not travel
  [ -e "$1" ] && return 0
  echo "== $stage_name needs $2 at ${1#"$PWD/"} (missing): copy it into the repository and" \
    "name its folder in the device call's carry"
  timings+=("$stage_name: FAILED (no ${1#"$PWD/"})")
  failed=1
  exit 1
}
notebooks_of() {  # notebooks_of NN...: their files
  local n
  for n in "$@"; do printf '%s\n' notebooks/"$n"_*.ipynb; done
}
estimate --stage "$stage_name" --repeats "$repeats" --data-root "$camvid" "${max_steps[@]}"
ran=1
deadline=$((SECONDS + stage_limit))
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
  probe)
    stage "probe ($bench_profile)" "$SEQSEG_PYTHON" benchmarks/probe.py \
      --profile "$bench_profile" --device "$device" --out "$out/reports" \
      --parts steps concurrent profile first-epoch eval "${probe_small[@]}" ;;
  probe-modes)
    stage "probe modes ($bench_profile)" "$SEQSEG_PYTHON" benchmarks/probe.py \
      --profile "$bench_profile" --device "$device" --out "$out/reports" --parts modes \
      "${probe_small[@]}" ;;
  dry-run-[0-9][0-9]|dry-run-[0-9][0-9]-[0-9][0-9])
    range="${stage_name#dry-run-}"
    mapfile -t books < <(notebooks_of $(seq -f '%02g' "$((10#${range%-*}))" "$((10#${range#*-}))"))
    stage "dry run ($bench_profile) of ${books[*]}" ./run_all.sh --profile "$bench_profile" \
      --dry-run --runs-dir "$runs_dir" --reports-dir "$out/reports" "${books[@]}" ;;
  table1-camvid-seed[0-9])
    needs "$camvid/manifest.json" "CamVid packed at paper (python -m seqseg_lib data pack-camvid)"
    seed="${stage_name##*seed}"
    stage "Table 1 runs, CamVid, seed $seed" "$SEQSEG_PYTHON" benchmarks/stage_runs.py table1 \
      --seed "$seed" --profile paper --dataset camvid --data-root "$camvid" \
      --runs-dir "$runs_dir" "${max_steps[@]}"
    # the notebooks read seed 0 (a later seed's runs come back as their records)
    if [ "$seed" = 0 ]; then
      mapfile -t books < <(notebooks_of 01 09)
      stage "notebooks 01 and 09 (paper, CamVid)" ./run_all.sh --profile paper \
        --dataset camvid --data-root "$camvid" --runs-dir "$runs_dir" \
        --reports-dir "$out/reports" --jobs 0 "${max_steps[@]}" "${books[@]}"
    fi ;;
  skip-camvid-seed[0-9])
    needs "$camvid/manifest.json" "CamVid packed at paper (python -m seqseg_lib data pack-camvid)"
    seed="${stage_name##*seed}"
    stage "skip ablation at 5,535 steps, CamVid, seed $seed" "$SEQSEG_PYTHON" \
      benchmarks/stage_runs.py skip --seed "$seed" --profile paper --dataset camvid \
      --data-root "$camvid" --runs-dir "$runs_dir" "${max_steps[@]}" ;;
  mnist-paper-embedded|mnist-paper-idx)
    digits=()
    if [ "$stage_name" = mnist-paper-idx ]; then
      compgen -G "$mnist/t10k-images-idx3-ubyte*" > /dev/null \
        || needs "$mnist/t10k-images-idx3-ubyte.gz" "the MNIST test digits in IDX"
      digits=(--mnist-root "$mnist")
    fi
    stage "notebook 03 (paper, ${digits[*]:-embedded digits})" ./run_all.sh --profile paper \
      --runs-dir "$runs_dir" --reports-dir "$out/reports" "${digits[@]}" --jobs 3 \
      "${max_steps[@]}" notebooks/03_*.ipynb ;;
  panoptic-paper)
    stage "the Hungarian U-Net and notebook 08's runs (paper)" "$SEQSEG_PYTHON" \
      benchmarks/stage_runs.py panoptic --profile paper --dataset synthetic \
      --runs-dir "$runs_dir" "${max_steps[@]}"
    stage "notebook 08 (paper)" ./run_all.sh --profile paper --runs-dir "$runs_dir" \
      --reports-dir "$out/reports" --jobs 0 "${max_steps[@]}" notebooks/08_*.ipynb ;;
  *)
    echo "device_check.sh: no stage $stage_name; see $queue, or main, skip, second" >&2
    ran=0
    failed=1 ;;
esac
exit $failed
