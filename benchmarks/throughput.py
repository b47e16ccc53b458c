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
   NaN/inf every step; the plain loop does neither.
b. **Sampling throughput** (images/s). ``generator.sample(labels, batch_size=1024)`` for
   ``--num-samples`` labels, for every model of ``augmentgen.models.available_models()`` with its
   default config (random weights: speed does not depend on training). Median of ``--repeats``
   calls after one warm-up call, on CPU, and on CUDA when available (fp32 and bf16 autocast).
c. **Peak memory** of training (ours and the plain loop, ``min(--steps, 10)`` steps) and of
   sampling (every model). Each measurement runs in a fresh subprocess of this script
   (``--measure-peak train-cgan`` etc.) so earlier work does not raise the high-water mark:
   on CPU the peak RSS (``ru_maxrss``) minus the peak RSS right after the imports, on CUDA
   ``torch.cuda.max_memory_allocated``.

Writes ``benchmarks/results/throughput.json`` (or ``--out``) with the figures, raw timings,
seeds, the machine, the versions, the git commit and the command line. Usage (the CPU is
shared with other jobs, so niced)::

    TQDM_DISABLE=1 nice -n 10 .venv/bin/python benchmarks/throughput.py
    TQDM_DISABLE=1 nice -n 10 .venv/bin/python benchmarks/throughput.py --parts a --steps 200 --repeats 5
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
from harness import git_commit, machine, sync

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


def run_ours(data, steps: int, warmup: int, batch_size: int, seed: int) -> dict:
    """Train with augmentgen's Trainer; the rate of steps ``warmup+1 .. warmup+steps``, by the trainer's clock."""
    training = TrainingConfig(
        steps=warmup + steps, batch_size=batch_size, seed=seed, checkpoint_every=0, sample_every=0,
        # One log entry at step `warmup` (and every `warmup` steps after it) gives the trainer's own
        # clock at the end of the warm-up; a log is a loss readout plus a parameter NaN check.
        log_every=warmup,
    )
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


def training_throughput(args, device: torch.device) -> dict:
    data = augmentgen.load_data(DATASET)
    config = cgan_config(data)
    images, labels = data.to_float(), data.labels

    def ours():
        return run_ours(data, args.steps, args.warmup, args.batch_size, args.seed)

    def plain():
        return plain_gan_loop(images, labels, config, args.steps, args.warmup, args.batch_size, args.seed, device)

    # One short untimed run of each first: one-off process costs (kernel selection, allocator
    # growth, lazy imports) must not land on whichever side happens to run first.
    run_ours(data, 1, args.warmup, args.batch_size, args.seed)
    plain_gan_loop(images, labels, config, 1, args.warmup, args.batch_size, args.seed, device)

    runs = {"ours": [], "plain": []}
    for repeat in range(args.repeats):
        order = (("ours", ours), ("plain", plain)) if repeat % 2 == 0 else (("plain", plain), ("ours", ours))
        for name, run in order:
            runs[name].append(run())
            print(f"train repeat {repeat} {name}: {runs[name][-1]['images_per_s']:.1f} images/s", flush=True)
    ours_median = statistics.median(r["images_per_s"] for r in runs["ours"])
    plain_median = statistics.median(r["images_per_s"] for r in runs["plain"])
    return {
        "model": "cgan, default config except diffaugment='' (hinge loss, class_loss_weight "
                 f"{config.class_loss_weight}, lr {config.learning_rate}, D lr x{config.discriminator_lr_scale}, "
                 f"betas {tuple(config.betas)})",
        "data": f"{DATASET} ({len(data)} images, {data.image_shape}), batch {args.batch_size}",
        "device": str(device),
        "timing": f"images/s over {args.steps} steps after {args.warmup} warm-up steps, median of "
                  f"{args.repeats} alternating repeats. ours: Trainer's own loop clock (history at step "
                  f"{args.warmup}, progress.train_seconds at the end; excludes model building, loader "
                  "setup and the final save). plain: time.perf_counter around the loop.",
        "ours_includes": ["EMA update of the generator every step (ema_decay 0.999)",
                          "per-step NaN/inf check of the losses (one host sync)",
                          "Accelerate wrapping and its seedable DataLoader"],
        "plain_loop": "textbook eager fp32: one fake batch per step, reused for the G update; D(real) "
                      "and D(fake) as two forwards; D parameter gradients computed in the G update "
                      "and zeroed before the next D update; no EMA, no checks",
        "ours_step": "augmentgen.families.gan.GANStep: G forward under no_grad for the D update, "
                     "one D forward on cat(real, fake), a fresh G forward for the G update with D frozen",
        "ours_images_per_s_median": ours_median,
        "plain_images_per_s_median": plain_median,
        "ratio_ours_over_plain": ours_median / plain_median,
        "runs": runs,
    }


# --- part b: sampling throughput


def model_names(args) -> list[str]:
    names = list(available_models())
    if args.families:
        wanted = [n.strip() for n in args.families.split(",") if n.strip()]
        names = [n for n in names if n in wanted]
    return names


def time_sampling(generator, labels: torch.Tensor, repeats: int, batch_size: int, bf16: bool) -> list[float]:
    device = generator.device
    seconds = []
    for i in range(repeats + 1):  # the first call is an untimed warm-up
        sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            generator.sample(labels, batch_size=batch_size)
        sync(device)
        if i > 0:
            seconds.append(time.perf_counter() - start)
    return seconds


def sampling_throughput(args) -> dict:
    variants = [("cpu", False)]
    if torch.cuda.is_available():
        variants += [("cuda", False), ("cuda", True)]
    figures = {}
    for name in model_names(args):
        torch.manual_seed(args.seed)
        generator = build_generator(build_config(name, num_classes=10)).eval()
        figures[name] = {"generator": repr(generator)}
        for device_type, bf16 in variants:
            generator = generator.to(device_type)
            # Labels cycle through the classes, so every class is sampled equally often.
            labels = torch.arange(args.num_samples, device=device_type) % generator.num_classes
            seconds = time_sampling(generator, labels, args.repeats, args.sample_batch_size, bf16)
            key = f"{device_type}_bf16" if bf16 else device_type
            median = statistics.median(seconds)
            figures[name][key] = {"images_per_s_median": args.num_samples / median,
                                  "seconds_median": median, "raw_seconds": seconds}
            print(f"sample {name} {key}: {args.num_samples / median:,.0f} images/s", flush=True)
    return {
        "timing": f"generator.sample({args.num_samples} labels, batch_size={args.sample_batch_size}) "
                  f"under torch.no_grad, median of {args.repeats} calls after 1 warm-up call; default "
                  "config per model (28x28 grayscale, 10 classes), random weights",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="a,b,c", help="a: training, b: sampling, c: peak memory")
    parser.add_argument("--steps", type=int, default=100, help="timed training steps per run (part a)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed training steps before them")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement (median)")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch size")
    parser.add_argument("--num-samples", type=int, default=2048, help="images per sampling call (part b)")
    parser.add_argument("--sample-batch-size", type=int, default=1024)
    parser.add_argument("--families", help="comma-separated models for parts b and c (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "throughput.json"))
    parser.add_argument("--measure-peak", metavar="KEY", help=argparse.SUPPRESS)  # part c's child mode
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("--warmup, --steps and --repeats must be at least 1")

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
        "machine": machine(device),
        "torch": torch.__version__,
        "augmentgen": augmentgen.__version__,
        "git_commit": git_commit(),
        "command": command_line(),
        "env": {k: os.environ[k] for k in ("TQDM_DISABLE", "OMP_NUM_THREADS") if k in os.environ},
    }
    out = Path(args.out)

    def save() -> None:  # after every part, so partial results survive an interruption
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")

    if "a" in parts:
        results["training"] = training_throughput(args, device)
        save()
        t = results["training"]
        print(f"training: ours {t['ours_images_per_s_median']:.1f} images/s, plain "
              f"{t['plain_images_per_s_median']:.1f} images/s, ours/plain {t['ratio_ours_over_plain']:.3f}")
    if "b" in parts:
        results["sampling"] = sampling_throughput(args)
        save()
    if "c" in parts:
        results["peak_memory"] = peak_memory(args)
        save()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
