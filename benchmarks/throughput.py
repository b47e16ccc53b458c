"""Training and sampling throughput and peak memory of augmentgen's generators.

Three parts, chosen with ``--parts`` (default ``a,b,c``):

a. **Trainer throughput** (images/s). ``augmentgen.training.Trainer`` training the default
   ``cgan`` (hinge loss, auxiliary class head with ``class_loss_weight`` 0.5, DiffAugment off)
   on the embedded ``fashion-mnist-small`` data (500 images, batch 64), side by side with a plain
   eager fp32 PyTorch GAN loop written like a textbook one (the PyTorch DCGAN tutorial's
   structure) using the same ``CGANGenerator`` / ``ProjectionDiscriminator`` modules, batch size,
   losses, learning rates and Adam betas. The two alternate ``--repeats`` times in one process
   (ours first on even repeats, plain first on odd ones), so background load hits both alike;
   each reports the median. Both are timed over ``--steps`` steps after ``--warmup`` steps:
   ours with the trainer's own loop clock (``Trainer.history`` at step ``--warmup`` and
   ``Trainer.progress.train_seconds`` at the end; model building, data loader setup and the
   final save are outside it), the plain loop with ``time.perf_counter``. Ours also updates an
   EMA of the generator every step (``ema_decay`` 0.999, the default) and checks the losses for
   NaN/inf at every log step (one host read per ``log_every`` steps); the plain loop does
   neither. ``--variants`` adds arms of ours with speed options of ``TrainingConfig`` (see
   ``VARIANTS``: ``bf16`` is ``mixed_precision="bf16"``, Accelerate's autocast; ``fast`` is bf16 +
   compile + channels_last + fused Adam, the default on CUDA), interleaved with the other two.
   The plain loop stays eager fp32 in every run: it is the yardstick.
b. **Sampling throughput** (images/s). ``generator.sample(labels, batch_size=1024)`` for
   ``--num-samples`` labels, for every model of ``augmentgen.models.available_models()`` with its
   default config (random weights: speed does not depend on training). Median of ``--repeats``
   calls after one warm-up call, fp32 and under ``torch.autocast(..., torch.bfloat16)``, on CPU
   and on CUDA when available (``--no-bf16-sampling`` leaves bf16 out).
c. **Peak memory** of training (ours and the plain loop, ``min(--steps, 10)`` steps) and of
   sampling (every model). Each measurement runs in a fresh subprocess of this script
   (``--measure-peak train-cgan`` etc.) so earlier work does not raise the high-water mark:
   on CPU the peak RSS (``ru_maxrss``) minus the peak RSS right after the imports, on CUDA
   ``torch.cuda.max_memory_allocated``.

Writes ``benchmarks/results/throughput.json`` (or ``--out``) with the figures, raw timings,
seeds, the machine, the versions, the git commit and the command line. ``--merge`` updates the
file in place (a slow arm can run with fewer steps, e.g. bf16 on a CPU without native bf16,
into its own section with ``--section-suffix``); every section records what wrote it. Usage (the CPU is
shared with other jobs, so niced)::

    TQDM_DISABLE=1 nice -n 10 .venv/bin/python benchmarks/throughput.py
    TQDM_DISABLE=1 nice -n 10 .venv/bin/python benchmarks/throughput.py --parts a --steps 200 --repeats 5
    TQDM_DISABLE=1 nice -n 10 .venv/bin/python benchmarks/throughput.py --parts a --variants bf16,foreach
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.state import AcceleratorState
from harness import git_commit, machine, sync, write_json

import augmentgen
from augmentgen.families.gan import CGANGenerator
from augmentgen.models import available_models, build_config, build_generator
from augmentgen.models.blocks import ProjectionDiscriminator
from augmentgen.models.losses import hinge_discriminator_loss, hinge_generator_loss
from augmentgen.training import Trainer, TrainingConfig

RESULTS = Path(__file__).resolve().parent / "results"
DATASET = "fashion-mnist-small"
PEAK_TRAIN_STEPS = 10  # the high-water mark is reached in the first steps (optimizer states)


# --- small helpers, copied into each benchmark so every script stands alone


def command_line() -> str:
    # sys.orig_argv keeps the interpreter and its flags; sys.argv only the script's arguments.
    return shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))


def worktree_changed() -> bool | None:
    """Whether the checkout differs from ``git_commit`` (figures of uncommitted code say so)."""
    try:
        return bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                   text=True, check=True, cwd=Path(__file__).resolve().parent).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return None


def peak_rss_mib() -> float:
    """The process's peak resident set size so far, in MiB.

    On Linux, VmHWM from /proc: ru_maxrss survives execve, so a child started by a large parent
    would report the parent's peak. Elsewhere ru_maxrss (KiB on Linux, bytes on macOS).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


# Taken right after the imports: the baseline that part c's peak RSS is reported against.
PEAK_RSS_AFTER_IMPORTS_MIB = peak_rss_mib()


def default_device() -> torch.device:
    # The trainer's Accelerator picks CUDA when there is one; the plain loop must run on the same.
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --- part a: trainer throughput


def cgan_config(data):
    # DiffAugment off on both sides, so both do exactly the same tensor work per step; every other
    # field (hinge loss, class_loss_weight, lr, betas, TTUR scale) is the family's default.
    return build_config("cgan", num_classes=data.num_classes, class_names=data.class_names, diffaugment="")


# Arms of ours beyond the defaults: TrainingConfig speed options (issue 17).
VARIANTS = {
    "bf16": {"mixed_precision": "bf16"},
    "foreach": {"optimizer_kernel": "foreach"},
    "fused": {"optimizer_kernel": "fused"},
    "contiguous": {"channels_last": False},  # the default layout is channels-last since issue 17
    "compile": {"compile": True},
    "fast": {"mixed_precision": "bf16", "compile": True, "channels_last": True, "optimizer_kernel": "fused"},
}
DEFAULT_VARIANTS = {"cpu": "bf16", "cuda": "bf16,fast"}


def run_ours(data, steps: int, warmup: int, batch_size: int, seed: int, **options) -> dict:
    """Train with augmentgen's Trainer; the rate of steps ``warmup+1 .. warmup+steps``, by the trainer's clock.

    ``options`` are TrainingConfig fields (a variant's speed options).
    """
    training = TrainingConfig(
        steps=warmup + steps, batch_size=batch_size, seed=seed, checkpoint_every=0, sample_every=0,
        # One log entry at step `warmup` (and every `warmup` steps after it) gives the trainer's own
        # clock at the end of the warm-up; a log is the one host read of the losses since the last
        # one (with their NaN/inf check) plus a parameter check.
        log_every=warmup, **options,
    )
    # Accelerate keeps one process-wide state whose mixed precision cannot change once set: reset
    # it so arms with and without bf16 can alternate in one process.
    AcceleratorState._reset_state(reset_partial_state=True)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cgan_config(data), training, tmp)
        start = time.perf_counter()
        trainer.fit(data)
        fit_seconds = time.perf_counter() - start
    progress = trainer.progress
    at_warmup = next(h for h in trainer.history if h["step"] == warmup)
    # history stores images_seen / train_seconds; on one process images_seen = step * batch_size.
    warmup_seconds = warmup * batch_size / at_warmup["images_per_second"]
    timed_seconds = progress.train_seconds - warmup_seconds
    return {
        "images_per_s": steps * batch_size / timed_seconds,
        "timed_seconds": timed_seconds,
        "trainer_images_per_s_all_steps": progress.images_seen / progress.train_seconds,
        "trainer_train_seconds_all_steps": progress.train_seconds,
        "fit_wall_seconds_incl_setup_and_save": fit_seconds,
    }


def plain_gan_loop(images: torch.Tensor, labels: torch.Tensor, config, steps: int, warmup: int,
                   batch_size: int, seed: int, device: torch.device) -> dict:
    """A textbook eager fp32 conditional GAN loop: hinge loss + auxiliary class cross-entropy.

    Follows the PyTorch DCGAN tutorial: one batch of fakes per step, detached for the
    discriminator update and reused for the generator update; the discriminator's parameter
    gradients from the generator update are simply zeroed before its next update.
    """
    torch.manual_seed(seed)
    generator = CGANGenerator(config).to(device)
    discriminator = ProjectionDiscriminator(config).to(device)
    betas = tuple(config.betas)
    g_opt = torch.optim.Adam(generator.parameters(), lr=config.learning_rate, betas=betas)
    d_opt = torch.optim.Adam(discriminator.parameters(),
                             lr=config.learning_rate * config.discriminator_lr_scale, betas=betas)
    weight = config.class_loss_weight
    images, labels = images.to(device), labels.to(device)
    batches_per_epoch = len(images) // batch_size  # drop_last, like the trainer's loader

    def batches():
        while True:
            order = torch.randperm(len(images), device=device)
            for i in range(batches_per_epoch):
                index = order[i * batch_size:(i + 1) * batch_size]
                yield images[index], labels[index]

    data = batches()
    start = None
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        real, y = next(data)
        noise = torch.randn(batch_size, config.latent_dim, device=device)
        fake = generator(noise, y)

        # Discriminator: realness on real and fake, class head on real only.
        d_opt.zero_grad()
        real_logits, real_class = discriminator(real, y)
        fake_logits, _ = discriminator(fake.detach(), y)
        d_loss = hinge_discriminator_loss(real_logits, fake_logits) + weight * F.cross_entropy(real_class, y)
        d_loss.backward()
        d_opt.step()

        # Generator: fool the updated discriminator and be classified as its label.
        g_opt.zero_grad()
        fake_logits, fake_class = discriminator(fake, y)
        g_loss = hinge_generator_loss(fake_logits) + weight * F.cross_entropy(fake_class, y)
        g_loss.backward()
        g_opt.step()
    sync(device)
    timed_seconds = time.perf_counter() - start
    return {"images_per_s": steps * batch_size / timed_seconds, "timed_seconds": timed_seconds}


def variant_names(args, device: torch.device) -> list[str]:
    text = DEFAULT_VARIANTS[device.type] if args.variants is None else args.variants
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; known: {sorted(VARIANTS)}")
    return names


def training_throughput(args, device: torch.device) -> dict:
    data = augmentgen.load_data(DATASET)
    config = cgan_config(data)
    images, labels = data.to_float(), data.labels
    variants = variant_names(args, device)

    def ours(**options):
        return lambda: run_ours(data, args.steps, args.warmup, args.batch_size, args.seed, **options)

    def plain():
        return plain_gan_loop(images, labels, config, args.steps, args.warmup, args.batch_size, args.seed, device)

    arms = {"ours": ours(), "plain": plain, **{f"ours_{v}": ours(**VARIANTS[v]) for v in variants}}
    # One short untimed run of each first: one-off process costs (kernel selection, allocator
    # growth, lazy imports, compilation caches) must not land on whichever side happens to run first.
    for name in arms:
        if name == "plain":
            plain_gan_loop(images, labels, config, 1, args.warmup, args.batch_size, args.seed, device)
        else:
            run_ours(data, 1, args.warmup, args.batch_size, args.seed,
                     **(VARIANTS[name.removeprefix("ours_")] if name != "ours" else {}))

    runs: dict[str, list[dict]] = {name: [] for name in arms}
    names = list(arms)
    for repeat in range(args.repeats):
        # Each repeat rotates the order, so every arm runs in every position as often (with two
        # arms: alternately first) while the shared CPU's load drifts.
        order = names[repeat % len(names):] + names[:repeat % len(names)]
        for name in order:
            runs[name].append(arms[name]())
            print(f"train repeat {repeat} {name}: {runs[name][-1]['images_per_s']:.1f} images/s", flush=True)
    medians = {name: statistics.median(r["images_per_s"] for r in runs[name]) for name in runs}
    return {
        **describe_training(args, config, data, device),
        "variants": {f"ours_{v}": VARIANTS[v] for v in variants},
        "ours_images_per_s_median": medians["ours"],
        "plain_images_per_s_median": medians["plain"],
        "ratio_ours_over_plain": medians["ours"] / medians["plain"],
        "images_per_s_median": medians,
        "ratio_over_ours": {name: m / medians["ours"] for name, m in medians.items()},
        "ratio_over_plain": {name: m / medians["plain"] for name, m in medians.items()},
        "runs": runs,
    }


def describe_training(args, config, data, device: torch.device) -> dict:
    """What part a measures, in words, for the JSON."""
    return {
        "model": "cgan, default config except diffaugment='' (hinge loss, class_loss_weight "
                 f"{config.class_loss_weight}, lr {config.learning_rate}, D lr x{config.discriminator_lr_scale}, "
                 f"betas {tuple(config.betas)})",
        "data": f"{DATASET} ({len(data)} images, {data.image_shape}), batch {args.batch_size}",
        "device": str(device),
        "timing": f"images/s over {args.steps} steps after {args.warmup} warm-up steps, median of "
                  f"{args.repeats} interleaved repeats (order rotated each repeat). ours: Trainer's own loop "
                  f"clock (history at step {args.warmup}, progress.train_seconds at the end; excludes model "
                  "building, loader setup and the final save). plain: time.perf_counter around the loop.",
        "ours_includes": ["EMA update of the generator every step (ema_decay 0.999, one torch._foreach_lerp_)",
                          f"NaN/inf check of the losses and parameters every log_every={args.warmup} steps "
                          "(one host read)",
                          "Accelerate wrapping and its seedable DataLoader"],
        "plain_loop": "textbook eager fp32: one fake batch per step, reused for the G update; D(real) "
                      "and D(fake) as two forwards; D parameter gradients computed in the G update "
                      "and zeroed before the next D update; no EMA, no checks",
        "ours_step": "augmentgen.families.gan.GANStep (issue 17): one G forward with autograd per step, its "
                     "fakes detached for the D update (one D forward on cat(real, fake)) and reused for "
                     "the G update through the updated D with its parameters frozen; channels-last layout "
                     "(TrainingConfig.channels_last, on by default)",
    }


# --- part b: sampling throughput


def model_names(args) -> list[str]:
    names = list(available_models())
    if args.families:
        wanted = [n.strip() for n in args.families.split(",") if n.strip()]
        names = [n for n in names if n in wanted]
    return names


def time_sampling(generator, labels: torch.Tensor, batch_size: int, bf16: bool) -> float:
    """Seconds of one ``generator.sample`` call, under bf16 autocast when ``bf16``."""
    device = generator.device
    sync(device)
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        generator.sample(labels, batch_size=batch_size)
    sync(device)
    return time.perf_counter() - start


def sampling_throughput(args) -> dict:
    variants = [("cpu", False), ("cpu", True)]
    if torch.cuda.is_available():
        variants += [("cuda", False), ("cuda", True)]
    if not args.bf16_sampling:
        variants = [v for v in variants if not v[1]]
    figures = {}
    for name in model_names(args):
        torch.manual_seed(args.seed)
        generator = build_generator(build_config(name, num_classes=10)).eval()
        figures[name] = {"generator": repr(generator)}
        for device_type in dict.fromkeys(d for d, _ in variants):
            generator = generator.to(device_type)
            # Labels cycle through the classes, so every class is sampled equally often.
            labels = torch.arange(args.num_samples, device=device_type) % generator.num_classes
            arms = [bf16 for d, bf16 in variants if d == device_type]
            for bf16 in arms:  # an untimed warm-up call of each
                time_sampling(generator, labels, args.sample_batch_size, bf16)
            seconds: dict[bool, list[float]] = {bf16: [] for bf16 in arms}
            for repeat in range(args.repeats):  # fp32 and bf16 alternate, first in turn
                for bf16 in (arms if repeat % 2 == 0 else arms[::-1]):
                    seconds[bf16].append(time_sampling(generator, labels, args.sample_batch_size, bf16))
            for bf16, raw in seconds.items():
                key = f"{device_type}_bf16" if bf16 else device_type
                median = statistics.median(raw)
                figures[name][key] = {"images_per_s_median": args.num_samples / median,
                                      "seconds_median": median, "raw_seconds": raw}
                print(f"sample {name} {key}: {args.num_samples / median:,.0f} images/s", flush=True)
            if len(seconds) == 2:
                figures[name][f"{device_type}_bf16_over_fp32"] = (
                    figures[name][f"{device_type}_bf16"]["images_per_s_median"]
                    / figures[name][device_type]["images_per_s_median"])
    return {
        "timing": f"generator.sample({args.num_samples} labels, batch_size={args.sample_batch_size}) "
                  f"under torch.no_grad, median of {args.repeats} calls after 1 warm-up call; default "
                  "config per model (28x28 grayscale, 10 classes), random weights; <device>_bf16: the same "
                  "call under torch.autocast(<device>, dtype=torch.bfloat16), alternating with fp32 calls",
        "figures": figures,
    }


# --- part c: peak memory (each measurement in its own subprocess)


def measure_peak(key: str, args) -> dict:
    """Run one measurement in this process (a fresh one) and return its peak memory."""
    device = default_device()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    kind, _, name = key.partition("-")
    if kind == "train":
        data = augmentgen.load_data(DATASET)
        steps = min(args.steps, PEAK_TRAIN_STEPS)
        if name == "cgan":
            run_ours(data, steps, args.warmup, args.batch_size, args.seed)
        elif name == "plain":
            plain_gan_loop(data.to_float(), data.labels, cgan_config(data), steps, args.warmup,
                           args.batch_size, args.seed, device)
        else:
            raise SystemExit(f"unknown training measurement {key!r}")
        what = f"load {DATASET} + {args.warmup + steps} training steps, batch {args.batch_size}"
    elif kind == "sample":
        torch.manual_seed(args.seed)
        generator = build_generator(build_config(name, num_classes=10)).to(device).eval()
        labels = torch.arange(args.num_samples, device=device) % generator.num_classes
        generator.sample(labels, batch_size=args.sample_batch_size)
        what = f"sample({args.num_samples} labels, batch_size={args.sample_batch_size})"
    else:
        raise SystemExit(f"--measure-peak takes train-cgan, train-plain or sample-<model>, not {key!r}")
    result = {
        "what": what,
        "device": str(device),
        "rss_after_imports_mib": PEAK_RSS_AFTER_IMPORTS_MIB,
        "peak_rss_mib": peak_rss_mib(),
        "peak_rss_above_imports_mib": peak_rss_mib() - PEAK_RSS_AFTER_IMPORTS_MIB,
    }
    if device.type == "cuda":
        result["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def peak_memory(args) -> dict:
    keys = ["train-cgan", "train-plain"] + [f"sample-{name}" for name in model_names(args)]
    figures = {}
    for key in keys:
        child = [sys.executable, str(Path(__file__).resolve()), "--measure-peak", key,
                 "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
                 "--num-samples", str(args.num_samples), "--sample-batch-size", str(args.sample_batch_size),
                 "--seed", str(args.seed)]
        done = subprocess.run(child, capture_output=True, text=True)
        if done.returncode != 0:
            figures[key] = {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
            print(f"peak {key}: FAILED ({figures[key]['error']})", flush=True)
            continue
        figures[key] = json.loads(done.stdout.strip().splitlines()[-1])  # the child's last line
        cuda = figures[key].get("cuda_max_allocated_mib")
        print(f"peak {key}: {figures[key]['peak_rss_above_imports_mib']:.0f} MiB RSS above imports"
              + (f", {cuda:.0f} MiB CUDA" if cuda is not None else ""), flush=True)
    return {
        "method": "each measurement in a fresh subprocess of this script (--measure-peak KEY); CPU: "
                  "peak RSS (getrusage ru_maxrss) minus the peak RSS right after the imports; CUDA: "
                  "torch.cuda.max_memory_allocated",
        "figures": figures,
    }


# --- main


def print_training(t: dict) -> None:
    print(f"training: ours {t['ours_images_per_s_median']:.1f} images/s, plain "
          f"{t['plain_images_per_s_median']:.1f} images/s, ours/plain {t['ratio_ours_over_plain']:.3f}")
    for name, rate in t["images_per_s_median"].items():
        if name.startswith("ours_"):
            print(f"training: {name} {rate:.1f} images/s, {t['ratio_over_ours'][name]:.3f}x ours, "
                  f"{t['ratio_over_plain'][name]:.3f}x plain")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="a,b,c", help="a: training, b: sampling, c: peak memory")
    parser.add_argument("--steps", type=int, default=100, help="timed training steps per run (part a)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed training steps before them")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement (median)")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch size")
    parser.add_argument("--num-samples", type=int, default=2048, help="images per sampling call (part b)")
    parser.add_argument("--sample-batch-size", type=int, default=1024)
    parser.add_argument("--families", help="comma-separated models for parts b and c (default: all)")
    parser.add_argument("--variants", default=None,
                        help=f"comma-separated extra arms of ours for part a, from {sorted(VARIANTS)} "
                             f"('' for none; default: {DEFAULT_VARIANTS})")
    parser.add_argument("--bf16-sampling", action=argparse.BooleanOptionalAction, default=True,
                        help="also time sampling under bf16 autocast (part b)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "throughput.json"))
    parser.add_argument("--merge", action="store_true",
                        help="update --out in place: keep the sections this run does not write (each "
                             "section records the command, commit and settings that wrote it)")
    parser.add_argument("--section-suffix", default="",
                        help="suffix of the sections this run writes, e.g. _bf16: training_bf16")
    parser.add_argument("--measure-peak", metavar="KEY", help=argparse.SUPPRESS)  # part c's child mode
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("--warmup, --steps and --repeats must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    if args.measure_peak:
        print(json.dumps(measure_peak(args.measure_peak, args)))
        return

    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    device = default_device()
    torch.manual_seed(args.seed)
    results = {
        "benchmark": "throughput",
        "settings": {k: v for k, v in vars(args).items() if k != "measure_peak"},
        "seeds": {"torch": args.seed, "trainer": args.seed, "plain_loop": args.seed,
                  "data_order": args.seed, "sampling": args.seed},
        "machine": {**machine(device), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "mkldnn_bf16_supported": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())},
        "torch": torch.__version__,
        "augmentgen": augmentgen.__version__,
        "git_commit": git_commit(),
        "git_worktree_changed": worktree_changed(),
        "command": command_line(),
        "env": {k: os.environ[k] for k in ("TQDM_DISABLE", "OMP_NUM_THREADS") if k in os.environ},
    }
    out = Path(args.out)
    written = {k: results[k] for k in ("command", "git_commit", "git_worktree_changed", "settings", "env")}
    if args.merge and out.exists():
        # The file's own provenance (its first run's) stays at the top; this run is listed below
        # it and in each section it writes.
        earlier = json.loads(out.read_text())
        results = {**earlier, "merged_runs": [*earlier.get("merged_runs", []), written]}

    def save(section: str, figures: dict) -> dict:  # after every part: partial results survive
        results[section + args.section_suffix] = {**figures, "written_by": written}
        write_json(out, results)
        return figures

    if "a" in parts:
        print_training(save("training", training_throughput(args, device)))
    if "b" in parts:
        save("sampling", sampling_throughput(args))
    if "c" in parts:
        save("peak_memory", peak_memory(args))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
