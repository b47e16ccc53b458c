"""Retrain any generator of the pretrained zoo with one command.

    nice -n 10 .venv/bin/python pretrained/train_zoo.py cgan-mnist [--steps N]

Trains on the full training set in ``$AUGMENTGEN_DATA_DIR`` (default ``../shared/data``), then
measures the generator and writes ``pretrained/NAME/`` (config.json, model.safetensors, README.md
model card, samples.png) through :func:`augmentgen.hub.save_pretrained`.

Measured quality, with augmentgen.metrics (the ResNet-8 reference classifier trained 500 steps
on the real training set, seed 0; 500 generated images per class, seed 0):

- *class consistency*: the reference classifier's accuracy on generated images labelled with the
  class they were asked for (high when each class's samples look like that class; blind to
  diversity), next to the same classifier's accuracy on the real test set;
- *FID* on the reference classifier's features (not Inception FID), generated vs real test
  images, next to the real-vs-real floor for the same number of images;
- *CAS*: the real test accuracy of the same classifier trained on generated images only.

The training run itself (checkpoints, intermediate grids, training.json) lives in
``runs/zoo/NAME`` (ignored by git); ``--skip-training`` re-measures and rewrites the zoo folder
from a finished run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from augmentgen.api import train
from augmentgen.data import load_data
from augmentgen.hub import load_generator, save_pretrained

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("AUGMENTGEN_DATA_DIR", ROOT.parent / "shared" / "data"))

# name -> how it is trained: the step counts the published models were trained with (9 to 11
# minutes per model on a 2-core CPU; each card records its own command and time).
ZOO: dict[str, dict] = {
    "cgan-mnist": dict(model="cgan", data="mnist", steps=1000, batch_size=64,
                       description="Conditional GAN (projection D + aux classifier) on MNIST digits, 28x28 grayscale"),
    "cgan-fashion-mnist": dict(model="cgan", data="fashion-mnist", steps=1000, batch_size=64,
                               description="Conditional GAN (projection D + aux classifier) on Fashion-MNIST, 28x28 grayscale"),
    "aae-mnist": dict(model="aae", data="mnist", steps=2000, batch_size=64,
                      description="Conditional adversarial autoencoder on MNIST digits, 28x28 grayscale"),
    "aae-fashion-mnist": dict(model="aae", data="fashion-mnist", steps=2000, batch_size=64,
                              description="Conditional adversarial autoencoder on Fashion-MNIST, 28x28 grayscale"),
    "cgan-cifar10": dict(model="cgan", data="cifar10", steps=20000, batch_size=64,
                         description="Conditional GAN on the 4000-image CIFAR-10 copy, 32x32 RGB (needs a GPU)"),
}


def reference_classifier(train_data, dataset: str, cache: Path, steps: int):
    """The project's ResNet-8 reference classifier on the real training set, cached as safetensors."""
    from safetensors.torch import load_file, save_file

    from augmentgen.metrics import ReferenceClassifier, train_classifier

    path = cache / f"reference-classifier-{dataset}-{steps}.safetensors"
    if path.exists():
        model = ReferenceClassifier(train_data.num_classes, train_data.image_shape[0], train_data.image_shape[-1])
        model.load_state_dict(load_file(str(path)))
        return model.eval()
    model = train_classifier(train_data, steps=steps, seed=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(path))
    return model


def measure(generator, dataset: str, cache: Path, *, per_class: int = 500, classifier_steps: int = 500,
            cas: bool = True) -> dict:
    """Class consistency, FID on the reference classifier's features, and CAS, all seed 0."""
    from augmentgen.metrics import ClassifierFeatures, evaluate_accuracy
    from augmentgen.metrics.distances import frechet_distance
    from augmentgen.metrics.scores import (
        class_consistency,
        classification_accuracy_score,
        sample_uint8_per_class,
    )

    train_data = load_data(dataset, data_dir=DATA_DIR)
    test_data = load_data(dataset, split="test", data_dir=DATA_DIR)
    judge = reference_classifier(train_data, dataset, cache, classifier_steps)
    feature = ClassifierFeatures(judge)
    fake = sample_uint8_per_class(generator, per_class, seed=0)
    n = len(fake)
    real_a = load_data(dataset, data_dir=DATA_DIR, per_class=per_class, seed=1).images
    metrics = {
        "class_consistency": round(class_consistency(generator, judge, per_class, seed=0)["mean"], 4),
        "classifier_real_test_accuracy": round(evaluate_accuracy(judge, test_data), 4),
        # FID of n generated vs n real test images; real training vs real test images of the same
        # size gives the floor the figure should be read against.
        "fid": round(frechet_distance(test_data.images[:n], fake.images, feature), 3),
        "fid_real_floor": round(frechet_distance(test_data.images[:n], real_a, feature), 3),
    }
    if cas:
        report = classification_accuracy_score(generator, test_data, per_class=per_class,
                                               steps=classifier_steps, seed=0)
        metrics["cas"] = round(report["cas"], 4)
    metrics["_samples_per_class"] = per_class
    metrics["_feature_extractor"] = "augmentgen ResNet-8 reference classifier, " \
        f"{classifier_steps} steps on the real training set, seed 0"
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(ZOO))
    parser.add_argument("--steps", type=int, help="override the default step count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="zoo folder to write (default pretrained/NAME)")
    parser.add_argument("--run-dir", type=Path, help="training run folder (default runs/zoo/NAME)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--skip-training", action="store_true", help="only re-measure and rewrite the card")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the zoo folder's model when the newly trained weights differ (refused otherwise)")
    args = parser.parse_args(argv)

    spec = ZOO[args.name]
    # One thread: the machine is shared, and oversubscribed OpenMP threads spin instead of working.
    torch.set_num_threads(args.threads)
    steps = args.steps or spec["steps"]
    run_dir = args.run_dir or ROOT / "runs" / "zoo" / args.name
    output = args.output or ROOT / "pretrained" / args.name

    if not args.skip_training:
        start = time.perf_counter()
        train(spec["model"], spec["data"], run_dir, data_dir=str(DATA_DIR), steps=steps,
              batch_size=spec["batch_size"], seed=args.seed, checkpoint_every=500, sample_every=500)
        print(f"trained {args.name} in {time.perf_counter() - start:.0f} s", flush=True)
    generator = load_generator(run_dir)
    t0 = time.perf_counter()
    training = json.loads((run_dir / "training.json").read_text())
    # The command that reproduces this run (also when only the card was rewritten).
    training["command"] = (f"nice -n 10 python pretrained/train_zoo.py {args.name} "
                           f"--steps {training['steps']} --seed {args.seed}")
    training["data"] = f"{spec['data']} (full training set, {len(load_data(spec['data'], data_dir=DATA_DIR))} images)"
    training["machine"] = os.environ.get("AUGMENTGEN_MACHINE", "2-core CPU shared with other jobs, torch " + torch.__version__)
    metrics = measure(generator, spec["data"], ROOT / "runs" / "zoo")
    training["measure_seconds"] = round(time.perf_counter() - t0, 1)
    save_pretrained(generator, output, dataset=spec["data"], metrics=metrics, training=training,
                    description=spec["description"], grid=run_dir / "samples.png", overwrite=args.overwrite)
    print(json.dumps({"name": args.name, "output": str(output), **metrics,
                      "train_seconds": training.get("train_seconds"), "steps": training.get("steps")}), flush=True)


if __name__ == "__main__":
    main()
