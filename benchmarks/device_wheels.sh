#!/usr/bin/env bash
# Fetch into .whl/ the wheels a GPU machine without internet needs to run device_check.sh:
# the notebook, data and job-launching packages of requirements.txt that a PyTorch GPU image
# seldom has, with their dependencies, for its Python (default 3.12, x86-64 Linux). Packages
# such an image already holds (the scientific stack; --have adds names) are left out to keep
# the folder small (about 20 MB). device_check.sh installs whatever .whl/ holds.
#
#   benchmarks/device_wheels.sh [--python-version 3.12] [--have NAME]...
set -euo pipefail
cd "$(dirname "$0")/.."

python_version=3.12
have=(numpy scipy pandas matplotlib pillow scikit-learn fonttools kiwisolver contourpy
      pyyaml pygments psutil joblib tzdata charset-normalizer narwhals cycler packaging
      python-dateutil six pyparsing threadpoolctl requests urllib3 idna certifi
      typing-extensions tqdm seaborn jinja2 markupsafe attrs filelock fsspec torch
      typing)  # typing: a Python 2 backport that would shadow the standard library's
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) python_version="$2"; shift 2 ;;
    --have) have+=("$2"); shift 2 ;;
    *) echo "device_wheels.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
wanted=()
for name in papermill ipykernel ipywidgets nbformat cityscapesscripts mlxtend pycocotools submitit; do
  wanted+=("$(grep -i "^$name==" requirements.txt)")
done
rm -rf .whl && mkdir .whl
python3 -m pip download -q --only-binary=:all: --python-version "$python_version" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d .whl "${wanted[@]}"
for wheel in .whl/*.whl; do  # a wheel's name: {project}-{version}-..., "_" for "-"
  project="$(basename "$wheel" | cut -d- -f1 | tr '[:upper:]_' '[:lower:]-')"
  for name in "${have[@]}"; do
    [ "$project" = "$name" ] && rm "$wheel" && break
  done
done
echo "$(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/"
