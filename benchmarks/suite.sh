#!/usr/bin/env bash
# The CPU benchmark suite, one part per dataset so that each part runs (and re-runs) alone:
#
#   bash benchmarks/suite.sh mnist|fashion-mnist|cifar10|diffusion|performance|all
#
# Every part adds to the JSON files in benchmarks/results/ (downstream.py keeps the seeds and
# arms already measured), then regenerates REPORT.md. Set PYTHON to pick the interpreter
# (default .venv/bin/python) and SEEDS to change the seeds (default 0,1,2,3,4). Two parts can run
# side by side on a 2-core machine with OMP_NUM_THREADS=1 each; two 2-thread processes on two
# cores slow each other down many times over. `all` runs the dataset parts that way, in two lanes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
SEEDS=${SEEDS:-0,1,2,3,4}
downstream() { "$PYTHON" benchmarks/downstream.py --seeds "$SEEDS" "$@"; }
# The classifier budget of a cell, chosen on held-out training images (kept when already measured:
# convergence.py resumes from its JSON).
converge() { "$PYTHON" benchmarks/convergence.py --dataset "$1" --budget "$2" ${3:+--epochs "$3"}; }
cell() { converge "$1" "$2" "${4:-}"; downstream --dataset "$1" --budget "$2" --sources "$3"; }

part=${1:?usage: bash benchmarks/suite.sh mnist|fashion-mnist|cifar10|diffusion|performance|all}
case "$part" in
  mnist)
    cell mnist 10pc aae:variation,cgan:free 100,200,400,800,1600
    # transfer: the cgan fine-tuned from the Fashion-MNIST zoo model, against the one from scratch
    downstream --dataset mnist --budget 10pc --sources 'cgan[init_from=augmentgen/cgan-fashion-mnist]:free'
    cell mnist 50pc aae:variation,cgan:free ;;
  fashion-mnist)
    cell fashion-mnist 50pc aae:variation,cgan:free,vae:variation,ae:variation,aegan:variation
    cell fashion-mnist 10pc aae:variation,cgan:free 100,200,400,800
    downstream --dataset fashion-mnist --budget 10pc --sources 'cgan[init_from=augmentgen/cgan-mnist]:free'
    cell fashion-mnist lt100 aae:variation,cgan:free
    # the cgan's limited-data regularisers: weights chosen on validation (3 seeds), then measured
    # with the spec the sweep chose (its JSON's "chosen"; see benchmarks/README.md)
    "$PYTHON" benchmarks/cgan_regularisers.py --dataset fashion-mnist --budget 50pc --seeds 0,1,2
    # the methods chosen on validation (teacher filter, soft labels, loss weight), as arms of their
    # own beside the plain ones, on the cells' baselines. The costliest runs of the suite: at lt100
    # the aae's arm scores 3 modes x 3 methods on 3 folds, each making its rows at every step (its
    # plain arm, 3 modes x 3 folds, took 50-115 min a seed here; this one scores three times as
    # many candidates)
    for budget in 50pc lt100; do
      downstream --dataset fashion-mnist --budget "$budget" --sources aae:variation,cgan:free \
        --methods plain,filter,soft,weighted
    done
    # the stronger classifier (ResNet-8 width 64; its own file, _w64), 3 seeds
    SEEDS=0,1,2 downstream --dataset fashion-mnist --budget 50pc --clf-width 64 --sources cgan:free ;;
  diffusion)
    # issue 29: time to a converged grid, the ddpm's coverage by guidance and length, then its cells
    # (rows from banks made once: sampling a ddpm at every classifier step is too slow on a CPU);
    # DDPM_STEPS: training steps of each ddpm (5000: where time_to_grid's score plateaued, seed 0)
    "$PYTHON" benchmarks/time_to_grid.py --families cgan=3000,ddpm=6000 --snapshot-every 250
    (cd benchmarks && "$PYTHON" ddpm_coverage.py --steps 4000 --snapshot-every 2000 --guidance 1,3 --per-class 30)
    # Banks hold bank_per_image x (images of the largest class) rows a class: 4 at 50/class, and 1
    # at lt100, whose largest class has 500 images (4 would be 20,000 rows a bank, hours of sampling).
    for cell in 50pc:4 lt100:1; do
      downstream --dataset fashion-mnist --budget "${cell%:*}" --gen-steps "${DDPM_STEPS:-5000}" \
        --bank-per-image "${cell#*:}" --sources ddpm:free@bank,ddpm:variation@bank
      # the methods chosen on validation, as arms of their own beside the plain ones
      downstream --dataset fashion-mnist --budget "${cell%:*}" --gen-steps "${DDPM_STEPS:-5000}" \
        --bank-per-image "${cell#*:}" --sources ddpm:free@bank,ddpm:variation@bank --methods plain,filter,soft,weighted
    done ;;
  cifar10)
    cell cifar10 200pc aae:variation,cgan:free ;;
  performance)
    "$PYTHON" benchmarks/family_quality.py --steps 1000 --seed 0
    "$PYTHON" benchmarks/throughput.py --steps 30 --repeats 3
    "$PYTHON" benchmarks/mixing_overhead.py --warmup 3 --steps 10
    "$PYTHON" benchmarks/pool_fill_rate.py
    "$PYTHON" benchmarks/classifier_speed.py ;;
  all)
    # Two single-thread lanes (Fashion-MNIST then diffusion | MNIST then CIFAR-10), then the
    # timing benchmarks alone, so that no other job shares the CPU with them.
    OMP_NUM_THREADS=1 bash -c 'bash "$0" fashion-mnist && bash "$0" diffusion' "$0" &
    fashion=$!
    OMP_NUM_THREADS=1 bash -c 'bash "$0" mnist && bash "$0" cifar10' "$0" &
    others=$!
    status=0
    wait "$fashion" || status=$?
    wait "$others" || status=$?
    [ "$status" -eq 0 ] || exit "$status"
    bash "$0" performance ;;
  *) echo "unknown part '$part': mnist, fashion-mnist, cifar10, diffusion, performance or all" >&2; exit 2 ;;
esac
"$PYTHON" benchmarks/report.py
