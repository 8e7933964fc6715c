#!/usr/bin/env bash
# One GPU session's work, prepared beforehand and run once on a single-GPU machine that has Python,
# CUDA PyTorch and PyTorch Geometric but no package index (see "Where the rows came from" in
# docs/results/fewshot-methods.md). Everything it writes goes under $OUT as it goes, so a run cut
# short still brings back what it did:
#   1. env.txt     the machine: GPU, driver, package versions
#   2. bench.txt   roft bench throughput on the GPU: the PyG reference loop, roft unfused and fused
#                  K = 64 and 256 (GIN, BBBP-sized; results independent of the group), peak memory
#   3. store.tgz   part 4 (docs/results/specs/4-fewshot-methods-gpu.yaml) at 50 and 500 labels, seeds 0-4
#                  in one sweep, resumed from docs/results/store-fewshot-gpu, then its scratch reference, into a store of its own, re-packed after
#                  each step (rows, epoch curves, alpha points, specs; no checkpoints); then the Optuna
#                  alpha searches over the Full-FT parents, seed by seed, as long as time remains
#   4. logs.tgz    the sweeps' logs
# Every step is resumable and stops cleanly at the deadline: BUDGET seconds (default 420) after start.
# Inputs (not in git; made by docs/results/gpu/prepare.sh, carried beside the checkout): .gpu/site.tar.xz, the Python packages the machine
# lacks (ray, rdkit, optuna and their needs, unpacked to /tmp/site) and .gpu/whl, wheels of pydantic
# (Ray Tune's need) installed beside them; .gpu/data, the data files of
# the six tasks and the two Hu GCN checkpoints, laid out like the data root.
# ROFT_CODE_VERSION names the commit the checkout is (the copy carries no git history).
set -uo pipefail
: "${OUT:?set OUT to the folder that comes back}" "${ROFT_CODE_VERSION:?set ROFT_CODE_VERSION}"
BUDGET=${BUDGET:-420}
START=$(date +%s)
DEADLINE=$((START + BUDGET))
REPO=$(pwd)
STORE=/tmp/store-gpu
SPEC=docs/results/specs/4-fewshot-methods-gpu.yaml
SCRATCH=docs/results/specs/4-fewshot-scratch-gpu.yaml
LABELS=fewshot:50,fewshot:500
export PYTHONUNBUFFERED=1 ROFT_DATA=$REPO/.gpu/data ROFT_CACHE=/tmp/roft-cache
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0

say() { echo "[$(($(date +%s) - START)) s] $*"; }
left() { echo $((DEADLINE - $(date +%s))); }
pack() {  # the store as it stands, without checkpoints or in-flight state
  tar -czf "$OUT/store.tgz.tmp" -C "$STORE" --exclude=artifacts --exclude=_tune --exclude=running --exclude=.lock . \
    && mv "$OUT/store.tgz.tmp" "$OUT/store.tgz"
  find "$STORE" /tmp/ray -name "*.log" -newer "$OUT/env.txt" 2>/dev/null | tar -czf "$OUT/logs.tgz" -T - 2>/dev/null
}
until_deadline() {  # run "$@" with SIGINT at the deadline (less a margin for packing)
  local budget=$(($(left) - 40))
  if [ "$budget" -lt 30 ]; then say "skipped (no time left): $*"; return 124; fi
  timeout --signal=INT --kill-after=20 "$budget" python3 -m orchestrator "$@"
}
roft() { python3 -m orchestrator "$@"; }

say "unpacking packages"
[ -d /tmp/site/ray ] || tar -xJf .gpu/site.tar.xz -C /tmp || exit 1  # the archive holds site/
[ -d /tmp/site/pydantic ] || python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$REPO
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import sys, torch, torch_geometric, ray, ray.tune, rdkit, optuna, pyarrow, numpy; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(), 'pyg', torch_geometric.__version__, 'ray', ray.__version__, 'rdkit', rdkit.__version__, 'optuna', optuna.__version__, 'pyarrow', pyarrow.__version__, 'numpy', numpy.__version__)"
  nproc
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
python3 -c "import ray.tune, rdkit, optuna, scikit_posthocs" || { say "a package is missing: stopping"; exit 1; }
python3 -c "import torch; assert torch.cuda.is_available()" || { say "no CUDA device: stopping"; exit 1; }
roft --version >/dev/null || { say "roft does not import: stopping"; exit 1; }
python3 -c "import ray; ray.init(include_dashboard=False, log_to_driver=False); r = ray.cluster_resources(); print('ray sees', r); assert r.get('GPU', 0) >= 1" 2>&1 | tail -1 | tee -a "$OUT/env.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || { say "Ray sees no GPU: stopping"; exit 1; }

[ -n "${SKIP_BENCH:-}" ] || say "bench: GIN, reference vs unfused vs fused 64 and 256"
[ -n "${SKIP_BENCH:-}" ] || timeout --signal=INT 100 python3 -m orchestrator bench throughput --device cuda --gnn gin --fused 64 256 \
  --variant lazy-test --tf32 --epochs 2 2>&1 | tee "$OUT/bench.txt"

# Resume from the committed store; its Full-FT rows kept no checkpoint, so they train again with their dependants.
[ -d "$STORE" ] || cp -r docs/results/store-fewshot-gpu "$STORE"
orphans=$(roft store list --store $STORE --where method=full-ft --keys)
[ -z "$orphans" ] || roft store forget --store $STORE $orphans
for spec in $SPEC $SCRATCH; do
  say "sweep $spec, seeds 0-4"
  until_deadline sweep $spec --store $STORE --only label_setting=$LABELS --only seed=0,1,2,3,4 --device cuda
  status=$?
  pack
  [ $status -eq 124 ] || [ $status -eq 130 ] && break
done
for seed in 0 1 2 3 4; do
  say "alpha searches, seed $seed"
  until_deadline alpha --store $STORE --method wise-ft roft-mol --groups 1 6 --n-trials 20 \
    --label-setting fewshot:50 fewshot:500 --seed $seed --device cuda --gpus 0.125 --cpus 1 || break
  pack
done
pack
roft status --store $STORE 2>&1 | tail -20
say "done"
