#!/usr/bin/env bash
# The GPU parts of the benchmarks in one command, on a machine with a CUDA device. PARTS (a comma
# list, run in this order; default ddpm,tests,throughput) picks them:
#   ddpm        does the default ddpm converge at Fashion-MNIST 50/class, and what CAS, diversity and
#               novelty does it reach when trained far longer than a CPU allows? One training run of
#               benchmarks/ddpm_coverage.py: the trainer's snapshot score (time_to_grid.py's score and
#               convergence rule) every DDPM_SNAPSHOT_EVERY steps, and consistency / CAS / diversity /
#               novelty at each guidance scale every DDPM_MEASURE_EVERY steps. One run rather than
#               time_to_grid.py and then ddpm_coverage.py, which would train the same model twice.
#   tests       the CUDA tests (pytest -m gpu tests/: bf16 dtypes, compile == eager, no host sync
#               per training step, none in the mixer's step or its label check);
#   throughput  benchmarks/throughput.py on CUDA: ours fp32 / bf16 / compile / fast (bf16 + compile
#               + channels_last + fused Adam) against the textbook loop, sampling fp32 and bf16,
#               peak memory.
# One device call holds at most 10 minutes: run PARTS=ddpm (about 5-6 minutes, see below) in one
# call and PARTS=tests,throughput (about 5-8 minutes) in another.
#
# Setup: INSTALL=1 (default) installs the pins of constraints.txt into .venv, which needs network
# access. A lent device machine has none: there run `bash benchmarks/gpu_prepare.sh` beforehand on
# a machine with network (it fills the ignored folder .gpu with the missing wheels and the
# Fashion-MNIST files), carry .gpu with the call and use INSTALL=0, which runs the machine's own
# python3 (PY; .venv/bin/python when present) with the wheels of .gpu/wheels installed into SITE
# and augmentgen from this source tree.
#
# Results go to $OUT when set (the device runner's output folder), else benchmarks/results/:
#   ddpm        ddpm_coverage_gpu_fashion-mnist_50pc.json (written after every snapshot, so a run
#               cut short keeps what it measured), grids/ddpm_coverage_gpu_fashion-mnist_50pc_ddpm.png
#               (and _cgan.png), ddpm_gpu.log;
#   tests       gpu_tests.txt, gpu_tests.xml;   throughput  throughput_cuda.json.
#
#   INSTALL=0 PARTS=ddpm bash benchmarks/gpu.sh         # the lent device machine, carry [".gpu"]
#   PARTS=tests,throughput STEPS=100 REPEATS=2 bash benchmarks/gpu.sh
#   INSTALL=0 PARTS=ddpm DEVICE=cpu DDPM_STEPS=4 DDPM_SNAPSHOT_EVERY=2 DDPM_MEASURE_EVERY=4 \
#       DDPM_PER_CLASS=2 DDPM_GUIDANCE=1 DDPM_EPOCHS=1 DDPM_MIN_STEPS=2 DDPM_COMPARE= \
#       OUT=/tmp/gpu_out bash benchmarks/gpu.sh              # a smoke test of the ddpm part on a CPU
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
parts=",${PARTS:-ddpm,tests,throughput},"
device="${DEVICE:-cuda}"
if [ "${INSTALL:-1}" = 1 ]; then
    [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
    .venv/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]'
fi
py="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
# Offline wheels (gpu_prepare.sh) go into a folder of their own: --target leaves the machine's
# site-packages alone, and --no-deps / --no-index because it can reach no registry.
site=""
if [ "${INSTALL:-1}" != 1 ] && compgen -G ".gpu/wheels/*.whl" >/dev/null; then
    site="${SITE:-/tmp/site}"
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .gpu/wheels/*.whl
fi
# augmentgen from this tree: the machine's python3 has no editable install of it.
export PYTHONPATH="${site:+$site:}$PWD${PYTHONPATH:+:$PYTHONPATH}"
# The Fashion-MNIST copy of gpu_prepare.sh, where ../shared/data does not travel.
if [ -z "${AUGMENTGEN_DATA_DIR:-}" ] && [ -d .gpu/data ]; then export AUGMENTGEN_DATA_DIR="$PWD/.gpu/data"; fi
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 MPLBACKEND=Agg
if [ "$device" = cpu ]; then
    "$py" -c "import torch; print('torch', torch.__version__, 'on the CPU (DEVICE=cpu)')"
else
    "$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())"
fi
status=0  # a failed part is reported in the exit status, and the next part still runs

if [[ $parts == *,ddpm,* ]]; then
    # The step count, estimated for an H100 (no measurement of it yet): the default ddpm (a
    # 0.62M-parameter diffusers UNet, widths 16/32/64, at 32x32 with batch 64) needs about 20
    # GFLOP a training step, well under a millisecond of the GPU's arithmetic, so the step is bound
    # by the host launching its kernels: about 1,400 dispatched torch operations a step (counted on
    # the CPU with foreach Adam, which is what CUDA gets), at 5-10 us each, ~7-14 ms a step. 20000
    # steps are then ~2.5-5 minutes of training, plus ~0.5 s for each of the 40 scored snapshots
    # (320 samples + an 80-image grid, 25 solver steps each), ~3 s for each of the 12 coverage
    # measurements (sampling, a ResNet-8 trained on the samples for CAS, the features), the cgan
    # comparison (~15 s) and ~30 s of start-up: 4-7 minutes in all. DDPM_TIMEOUT stops the part
    # before the call's 10 minutes run out; the JSON is rewritten after every snapshot, so a run cut
    # short keeps every snapshot and measurement so far ("partial": true), and the log keeps the
    # step times (train_seconds) to size a rerun with.
    steps="${DDPM_STEPS:-20000}"
    every="${DDPM_SNAPSHOT_EVERY:-$(( steps / 40 > 0 ? steps / 40 : 1 ))}"   # the convergence curve
    measure="${DDPM_MEASURE_EVERY:-$(( steps / 4 > 0 ? steps / 4 : 1 ))}"    # 4 training lengths
    guidance="${DDPM_GUIDANCE:-1,2,3}"   # 1: no guidance; 2: the config's default; 3: the CPU run's best CAS
    per_class="${DDPM_PER_CLASS:-30}"    # as the CPU figures (CAS 60.7% at 4000 steps) were measured
    compare="${DDPM_COMPARE-cgan=600}"   # the downstream protocol's cgan, measured the same way ('' for none)
    limit="${DDPM_TIMEOUT:-540}"
    json="$out/ddpm_coverage_gpu_fashion-mnist_50pc.json"  # never benchmarks/results' CPU file
    classifier=()
    [ -n "${DDPM_EPOCHS:-}" ] && classifier+=(--epochs "$DDPM_EPOCHS")
    [ -n "${DDPM_MIN_STEPS:-}" ] && classifier+=(--min-steps "$DDPM_MIN_STEPS")
    echo "ddpm part: ddpm_coverage.py on fashion-mnist 50/class, seed 0: ddpm $steps steps (classifiers and score" \
         "on $device), snapshot score every $every, coverage every $measure at guidance $guidance," \
         "$per_class samples/class${compare:+, compare $compare}; stopped after ${limit}s; -> $json" \
         "(data: ${AUGMENTGEN_DATA_DIR:-../shared/data})"
    [ -f "${AUGMENTGEN_DATA_DIR:-../shared/data}/fashion-mnist/train-images-idx3-ubyte.gz" ] ||
        echo "warning: no Fashion-MNIST under ${AUGMENTGEN_DATA_DIR:-../shared/data}: run benchmarks/gpu_prepare.sh and carry .gpu" >&2
    # A rerun into the same folder resumes (finished families are skipped); a fresh $OUT starts over.
    set +e
    timeout -k 20 "$limit" "$py" benchmarks/ddpm_coverage.py --dataset fashion-mnist --budget 50pc --seed 0 \
        --device "$device" --steps "$steps" --snapshot-every "$every" --measure-every "$measure" \
        --guidance "$guidance" --per-class "$per_class" --compare "$compare" "${classifier[@]}" --out "$json" \
        2>&1 | tee "$out/ddpm_gpu.log"
    rc=${PIPESTATUS[0]}
    set -e
    [ "$rc" = 0 ] || { echo "ddpm part: exit status $rc (124: stopped at DDPM_TIMEOUT=${limit}s)"; status=$rc; }
    # The answer in a few lines (the device reply keeps only the end of the output).
    "$py" - "$json" <<'EOF' || true
import json, sys
d = json.load(open(sys.argv[1]))
for family, f in d["families"].items():
    s = f.get("snapshots", [])
    rate = f"{s[-1]['step'] / max(s[-1]['train_seconds'], 1e-9):.0f} steps/s" if s else "-"
    print(f"{family}{' (partial)' if f.get('partial') else ''}: best score {f.get('best_score')}, converged "
          f"{f.get('converged')} at step {f.get('converged_step')}; {len(s)} snapshots, training {rate}")
    for r in f["records"]:
        print(f"  step {r['step']:>6} guidance {r['guidance_scale']}: CAS {r['cas']:.3f}, consistency "
              f"{r['class_consistency']:.3f}, diversity {r['diversity_pixels']:.3f}/{r['diversity_features']:.3f}, "
              f"novelty {r['novelty_pixels']:.3f}/{r['novelty_features']:.3f} (pixels/features)")
EOF
fi

if [[ $parts == *,tests,* ]]; then
    # The tests' result is kept, and the benchmark still runs if one fails.
    set +e
    "$py" -m pytest -q -m gpu tests/ --junitxml "$out/gpu_tests.xml" 2>&1 | tee "$out/gpu_tests.txt"
    rc=${PIPESTATUS[0]}
    set -e
    [ "$rc" = 0 ] || status=$rc
fi

if [[ $parts == *,throughput,* ]]; then
    "$py" benchmarks/throughput.py --parts a,b,c --steps "${STEPS:-200}" --warmup "${WARMUP:-20}" \
        --repeats "${REPEATS:-3}" --variants "${VARIANTS:-bf16,compile,fast}" --out "$out/throughput_cuda.json" ||
        status=$?
fi
exit "$status"
