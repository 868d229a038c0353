#!/usr/bin/env bash
# OSPO | verl V1 trainer (trainer_mode ospo_sync) | FSDP + vLLM | NVIDIA GPUs
#
# verl's GRPO advantage, spread over each response's tokens by the Owen-Shapley credit of
# the search query it writes. Needs, in one environment: verl 0.9.x with its GPU stack
# (vLLM or SGLang), and ospo_fast, whose verl.plugins entry point registers ospo_sync in
# every verl process. Any other argument is a Hydra override, as for verl's own scripts:
#
#   bash examples/verl/run_ospo_grpo.sh trainer.total_epochs=2 ospo.mode=hybrid

set -xeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- user-adjustable ----
DATA_DIR=${DATA_DIR:-$HOME/data/ospo}
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-1.5B-Instruct}
INFER_BACKEND=${INFER_BACKEND:-vllm}
NNODES=${NNODES:-1}
NGPUS_PER_NODE=${NGPUS_PER_NODE:-1}
RETRIEVER=${RETRIEVER:-minilm}
# ---- end user-adjustable ----

# The product-search world and verl's parquet files, written once.
if [ ! -f "${DATA_DIR}/train.parquet" ]; then
    python3 "${HERE}/prepare_data.py" --out "${DATA_DIR}"
fi

python3 -m verl.trainer.main_ppo \
    --config-path="${HERE}/config" \
    --config-name=ospo_grpo \
    ospo.world_dir="${DATA_DIR}/world" \
    ospo.retriever="${RETRIEVER}" \
    data.train_files="${DATA_DIR}/train.parquet" \
    data.val_files="${DATA_DIR}/test.parquet" \
    actor_rollout_ref.model.path="${MODEL_PATH}" \
    actor_rollout_ref.rollout.name="${INFER_BACKEND}" \
    trainer.n_gpus_per_node="${NGPUS_PER_NODE}" \
    trainer.nnodes="${NNODES}" \
    "$@"
