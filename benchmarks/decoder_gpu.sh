#!/usr/bin/env bash
# benchmarks/decoder.py with a pretrained 0.5-1B decoder on one GPU (issue 16), prepared for a machine
# that has both; nothing here downloads weights.
#
#   GNNLM_DATA_DIR=/path/to/datasets LM=/path/to/Qwen2.5-0.5B bash benchmarks/decoder_gpu.sh
#
# LM: a local folder (or a hub id where the hub is reachable) of a causal LM: Qwen2.5-0.5B,
# Llama-3.2-1B, TinyLlama-1.1B, gpt2-medium. The LM is fine-tuned with LoRA (r=16, peft's default
# target modules for its family: q_proj/v_proj, c_attn) at lr 2e-4 while the GNN, the cross-attention
# and the prompt projector train at 1e-3; the same three arms (text / triples / graph prompts), the
# cost table with the peak CUDA memory, 20k training and 2k test 1-hop questions, 3 seeds.
# Results: benchmarks/results/decoder_gpu.{json,md}. About 1-2 h on one H100/H200 (generation of
# 2k answers per run dominates evaluation).
set -euo pipefail
: "${GNNLM_DATA_DIR:?set GNNLM_DATA_DIR to the folder holding metaqa/}"
: "${LM:?set LM to a local folder of a 0.5-1B causal LM (e.g. Qwen2.5-0.5B)}"
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
python benchmarks/decoder.py --lm "$LM" --device cuda --seeds 0 1 2 \
  --max-train "${MAX_TRAIN:-20000}" --max-test "${MAX_TEST:-2000}" --max-valid 200 \
  --epochs 1 --lr 1e-3 --lora-r "${LORA_R:-16}" --threads 8 --cost-batch 16 \
  --out runs/decoder_gpu --tag gpu "$@"
