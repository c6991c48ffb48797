#!/usr/bin/env bash
# The GPU checks of issue 17, as one prepared script for a machine with one CUDA device.
#
#   GNNLM_DATA_DIR=/path/to/datasets bash benchmarks/gpu.sh            # everything (hours; not yet timed)
#   GNNLM_DATA_DIR=/path/to/datasets bash benchmarks/gpu.sh --quick    # bounded epochs, two models
#
# 1. kge: the shipped FB15k-237 and WN18RR configs (configs/<dataset>/<model>.yaml) trained on the GPU to
#    their published numbers (full: as shipped, early stopping included; --quick: 20 epochs, no
#    validation), through benchmarks/kge.py: filtered test MRR / Hits@k beside the MRR each config aims
#    at, train seconds, triples/s. Results: benchmarks/results/gpu_kge.json.
# 2. precision and compilation: the FB15k-237 RotatE config (sLCWA: one compiled graph per batch shape;
#    KvsAll's fused loss returns Python floats, which makes dynamo recompile) for 10 epochs in fp32,
#    bf16 autocast (training.autocast=bf16) and torch.compile (training.compile=true), same seed:
#    triples/s and MRR of each (benchmarks/results/gpu_kge_{fp32,bf16,compile}.json).
# 3. the encoder and fusion benchmarks (benchmarks/encoders.py, benchmarks/fusion.py, --device cuda):
#    step time and peak CUDA memory of our R-GCN/CompGCN and stock PyG's on full FB15k-237, and the
#    fused-LM step ratios against LM-only (wall time, synchronised).
# 4. question answering (issue 13), the runs a CPU cannot afford: CommonsenseQA + ConceptNet on all 8,500
#    training questions for 3 epochs, 4 arms x 3 seeds (about 12 h on 2 CPU cores), and MetaQA as
#    shipped; through benchmarks/qa.py (results: benchmarks/results/gpu_qa.{json,md}). --quick: one
#    epoch, 2,000 training questions. SECTIONS=qa picks it alone.
# Written when no device was lent: none of it has run on a GPU yet.
# Each section writes its own JSON, so a run cut short keeps what finished; SECTIONS=kge,precision picks.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${GNNLM_DATA_DIR:?set GNNLM_DATA_DIR to the folder holding fb15k-237/ and wn18rr/}"
export GNNLM_DATA_DIR
QUICK=0
if [[ "${1:-}" == "--quick" ]]; then QUICK=1; shift; fi
SECTIONS="${SECTIONS:-kge,precision,encoders,fusion,qa}"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
RESULTS=benchmarks/results
CUDA=(--set training.device=cuda --set evaluation.batch_size=1024)
if ((QUICK)); then
  BOUND=(--epochs 20 --set evaluation.frequency=0)
  MODELS=(complex rotate)
else
  BOUND=()
  MODELS=(transe distmult complex rotate tucker conve)
fi

has() { [[ ",$SECTIONS," == *",$1,"* ]]; }

if has kge; then
  echo "== 1. shipped configs on the GPU"
  python benchmarks/kge.py --datasets fb15k-237 wn18rr --models "${MODELS[@]}" --threads 8 --quiet \
    "${CUDA[@]}" "${BOUND[@]}" --out "$RESULTS/gpu_kge.json"
fi

if has precision; then
  echo "== 2. fp32 / bf16 autocast / torch.compile, FB15k-237 RotatE, 10 epochs"
  for arm in fp32 bf16 compile; do
    extra=()
    [[ $arm == bf16 ]] && extra=(--set training.autocast=bf16)
    [[ $arm == compile ]] && extra=(--set training.compile=true)
    python benchmarks/kge.py --datasets fb15k-237 --models rotate --threads 8 --quiet "${CUDA[@]}" \
      --epochs 10 --set evaluation.frequency=0 "${extra[@]}" --out "$RESULTS/gpu_kge_$arm.json"
  done
fi

if has encoders; then
  echo "== 3a. encoders on the GPU"
  python benchmarks/encoders.py --only speed --device cuda --threads 8 --steps 10 --out "$RESULTS/gpu_encoders.json"
fi

if has fusion; then
  echo "== 3b. fusion on the GPU"
  python benchmarks/fusion.py --device cuda --threads 8 --rounds 20 --block-rounds 0 --no-memory \
    --out "$RESULTS/gpu_fusion.json"
fi
if has qa; then
  echo "== 4. CommonsenseQA (full training data) and MetaQA on the GPU"
  CSQA=(--set-commonsenseqa data.num_train=0 --set-commonsenseqa training.epochs=3)
  ((QUICK)) && CSQA=(--set-commonsenseqa data.num_train=2000)
  python benchmarks/qa.py --tasks commonsenseqa metaqa --budget full --threads 8 --quiet \
    --set-commonsenseqa training.device=cuda --set-metaqa training.device=cuda "${CSQA[@]}" \
    --out runs/gpu_qa --results "$RESULTS/gpu_qa.json"
fi
echo "done: $RESULTS/gpu_*.json"
