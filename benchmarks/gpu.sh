#!/usr/bin/env bash
# The GPU part of issue 17 in one command, on a machine with a CUDA device:
#   1. install the pinned versions (constraints.txt) into .venv (skip with INSTALL=0 when the
#      environment is already set up, e.g. on a machine without network access);
#   2. run the CUDA tests (pytest -m gpu tests/: bf16 dtypes, compile == eager, no host sync per
#      training step, none in the mixer's step or its label check);
#   3. run benchmarks/throughput.py on CUDA: ours fp32 / bf16 / compile / fast (bf16 + compile +
#      channels_last + fused Adam) against the textbook loop, sampling fp32 and bf16, peak memory.
# Results go to $OUT when set (the device runner's output folder), else benchmarks/results/:
# gpu_tests.txt, gpu_tests.xml and throughput_cuda.json.
#
#   bash benchmarks/gpu.sh                 # everything, about 5-8 minutes on one GPU
#   STEPS=100 REPEATS=2 bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
if [ "${INSTALL:-1}" = 1 ]; then
    [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
    .venv/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]'
fi
py=.venv/bin/python
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
$py -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())"
# The tests' result is kept, and the benchmark still runs if one fails.
set +e
$py -m pytest -q -m gpu tests/ --junitxml "$out/gpu_tests.xml" 2>&1 | tee "$out/gpu_tests.txt"
tests=${PIPESTATUS[0]}
set -e
$py benchmarks/throughput.py --parts a,b,c --steps "${STEPS:-200}" --warmup "${WARMUP:-20}" \
    --repeats "${REPEATS:-3}" --variants "${VARIANTS:-bf16,compile,fast}" --out "$out/throughput_cuda.json"
exit "$tests"
