#!/usr/bin/env bash
# Prepares, on a machine with a package index, what run.sh needs on a GPU machine that has CUDA PyTorch and
# PyTorch Geometric but no index: .gpu/ in the repository root (ignored by git; name it in what travels).
#   .gpu/site.tar.xz  Ray, RDKit, Optuna and their needs for CPython 3.12 on x86-64, unpacked and pruned
#                     (Ray without its Java jars, dashboard front end, RLlib and Serve, its binaries stripped;
#                     RDKit without Contrib): about 40 MB, where the wheels are 115 MB
#   .gpu/whl/         pydantic and its needs (Ray Tune imports it), as wheels
#   .gpu/data/        the six tasks of part 4 and the two Hu GCN checkpoints, from the data root
# Usage: bash docs/results/gpu/prepare.sh DATA_ROOT   (the versions match pyproject.toml's pins)
set -euo pipefail
DATA=${1:?usage: prepare.sh DATA_ROOT (a folder laid out like the benchmark data)}
cd "$(dirname "$0")/../../.."
EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")"
grep -qx '/.gpu/' "$EXCLUDE" 2>/dev/null || echo '/.gpu/' >> "$EXCLUDE"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
download() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$1" "${@:2}"
}
download "$WORK/whl" 'ray==2.60.0' 'rdkit==2026.9.1' 'optuna==5.1.0' sqlalchemy alembic colorlog mako \
  jsonschema jsonschema-specifications referencing rpds-py scikit-posthocs
mkdir -p "$WORK/site"
for wheel in "$WORK"/whl/*.whl; do python3 -m zipfile -e "$wheel" "$WORK/site"; done
cd "$WORK/site"
rm -rf ray/jars ray/dashboard/client/build ray/rllib ray/serve rdkit-stubs rdkit/Contrib rdkit/sping
find . -name "*.pyi" -delete
find . \( -name tests -o -name __pycache__ \) -type d -prune -exec rm -rf {} +
chmod +x ray/core/src/ray/gcs/gcs_server ray/core/src/ray/raylet/raylet
strip --strip-unneeded ray/_raylet.so ray/core/src/ray/gcs/gcs_server ray/core/src/ray/raylet/raylet
cd - >/dev/null
mkdir -p .gpu
tar -cf - -C "$WORK" site | xz -9 -T0 > .gpu/site.tar.xz
rm -rf .gpu/whl && download .gpu/whl pydantic pydantic-core annotated-types typing-inspection
mkdir -p .gpu/data/moleculenet .gpu/data/weights/pretrain_gnns_chem
for file in bbbp.csv bace.csv.gz clintox.csv sider.csv esol.csv lipophilicity.csv; do
  cp "$DATA/moleculenet/$file" .gpu/data/moleculenet/
done
cp "$DATA"/weights/pretrain_gnns_chem/gcn_{contextpred,supervised}.pth .gpu/data/weights/pretrain_gnns_chem/
du -sh .gpu/site.tar.xz .gpu/whl .gpu/data
