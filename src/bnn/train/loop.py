"""The training loop: resumable from its checkpoint, epoch chosen on a held-out split, exported exactly."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._atomic import atomic_write
from ..classifier import Classifier
from ..datasets import mnist_file
from ..errors import BnnError, MissingExtraError
from ..formats.images import PREPROCESSING
from ..paramset import ParamSet, network_spec
from .data import load_dataset, load_folder_dataset, shifted, split_validation
from .export import export_params
from .model import LFC, pixels_to_inputs
from .teacher import train_teacher

__all__ = ["TrainConfig", "TrainResult", "export_run", "train"]


@dataclass
class TrainConfig:
    """Hyper-parameters and data of a training run (recorded in the model card)."""

    network: str = "lfcW1A1"
    epochs: int = 60
    batch_size: int = 100
    lr: float = 3e-3
    max_shift: int = 2
    seed: int = 0
    threads: int | None = None
    # IDX files; "" is MNIST's, found by `bnn.datasets.mnist_file` ($BNN_DATA, else the download cache).
    train_images: str = ""
    train_labels: str = ""
    test_images: str = ""
    test_labels: str = ""
    classes: list[str] = field(default_factory=lambda: [str(i) for i in range(10)])
    max_steps: int | None = None  # stop early (tests)
    # A folder of class subfolders of pictures (or train/ and test/ so organised) instead of IDX files;
    # its folder names become `classes`. Without test/, `test_fraction` of each class is held out.
    data: str = ""
    test_fraction: float = 0.2
    validation: int = 0  # training images held out (stratified) to select the epoch; 0: keep the last epoch
    label_smoothing: float = 0.0
    distill: float = 0.0  # weight of the distillation loss from a small float CNN teacher; 0: no teacher
    distill_temperature: float = 2.0
    teacher_epochs: int = 4
    # A run folder to start from: its selected model's weights (a second cycle, or fine-tuning); the
    # optimiser, schedule and history start afresh. Same network, classes and validation split.
    init: str = ""


@dataclass
class TrainResult:
    params: ParamSet
    model: object
    history: list[dict]
    seconds: float
    #: accuracy of the exported set on the test images, computed by the bit-exact runtime (0..1)
    test_accuracy: float


def _accuracy(model, inputs, labels, batch: int = 2000) -> tuple[float, np.ndarray]:
    model.eval()
    preds = []
    with torch.no_grad():
        for s in range(0, len(inputs), batch):
            preds.append(model(inputs[s : s + batch]).argmax(dim=1))
    pred = torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)
    return float((pred == labels).mean()) if len(labels) else 0.0, pred


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_write(path) as f:
        torch.save(state, f)


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train (or resume, from ``out_dir/checkpoint.pt``) and export; writes history.json and curves.png.

    Deterministic for a given config on a given machine and thread count.
    """
    spec = network_spec(config.network)
    if not config.data:
        config = _with_data_files(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    if config.data:
        dataset = load_folder_dataset(
            config.data, test_fraction=config.test_fraction, seed=config.seed, progress=progress
        )
        config = dataclasses.replace(config, classes=dataset.classes)
        train_x, train_y, test_x, test_y = dataset.train_x, dataset.train_y, dataset.test_x, dataset.test_y
        with atomic_write(out_dir / "test-files.txt") as f:  # the held-out pictures, for the record
            f.write("".join(f"{name}\n" for name in dataset.test_files).encode())
    else:
        train_x, train_y = load_dataset(config.train_images, config.train_labels)
        test_x, test_y = load_dataset(config.test_images, config.test_labels)
    n_classes = len(config.classes)
    for name, labels in (("training", train_y), ("test", test_y)):
        if len(labels) and labels.max() >= n_classes:
            raise BnnError(f"{name} labels go up to {labels.max()} but there are {n_classes} class names")
    kept, held = split_validation(train_y, config.validation, config.seed)
    val_x, val_y = train_x[held], train_y[held]
    train_x, train_y = train_x[kept], train_y[kept]
    teacher = None
    if config.distill > 0:
        teacher = train_teacher(config, train_x, train_y, n_classes, out_dir / "teacher.pt")
    model = LFC(spec.activation_bits, n_classes)
    if config.init:
        model.load_state_dict(_initial_weights(config))
    steps_per_epoch = math.ceil(len(train_x) / config.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(1, config.epochs * steps_per_epoch)
    )
    history: list[dict] = []
    start_epoch, elapsed = 0, 0.0
    best = {"validation_accuracy": -1.0, "epoch": 0, "model": None}
    checkpoint = out_dir / "checkpoint.pt"
    if checkpoint.exists():
        _, state, _ = _load_checkpoint(out_dir)  # a truncated file is named, not a traceback
        if state["config"] != asdict(config):
            raise BnnError(f"{checkpoint}: was made with another configuration; use a new folder")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, history, elapsed = state["epoch"], state["history"], state["seconds"]
        best = state["best"]
    test_inputs = pixels_to_inputs(test_x)
    val_inputs = pixels_to_inputs(val_x)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    temperature = config.distill_temperature
    steps_done = start_epoch * steps_per_epoch
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, initial=start_epoch, desc=f"train {config.network}", unit="epoch")
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng([config.seed, epoch])
        order = rng.permutation(len(train_x))
        model.train()
        total, correct, seen = 0.0, 0, 0
        for s in range(0, len(order), config.batch_size):
            if config.max_steps is not None and steps_done >= config.max_steps:
                break
            batch = order[s : s + config.batch_size]
            moved = shifted(train_x[batch], config.max_shift, rng)
            x = pixels_to_inputs(moved)
            y = torch.from_numpy(train_y[batch])
            logits = model(x)
            loss = loss_fn(logits, y)
            if teacher is not None:
                with torch.no_grad():
                    soft = torch.softmax(teacher(torch.from_numpy(moved)) / temperature, dim=1)
                kd = nn.functional.kl_div(torch.log_softmax(logits / temperature, dim=1), soft, reduction="batchmean")
                loss = (1 - config.distill) * loss + config.distill * temperature**2 * kd
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            model.clip_()
            steps_done += 1
            total += loss.item() * len(batch)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(batch)
        test_acc, _ = _accuracy(model, test_inputs, test_y)
        val_acc = _accuracy(model, val_inputs, val_y)[0] if len(val_y) else None
        elapsed += time.perf_counter() - t0
        record = {
            "epoch": epoch + 1,
            "loss": total / max(seen, 1),
            "train_accuracy": correct / max(seen, 1),
            "validation_accuracy": val_acc,
            "test_accuracy": test_acc,  # reported only; never used to select
            "seconds": elapsed,
        }
        history.append(record)
        # Later epochs win ties: the schedule has annealed further.
        if val_acc is not None and val_acc >= best["validation_accuracy"]:
            best = {"validation_accuracy": val_acc, "epoch": epoch + 1, "model": copy.deepcopy(model.state_dict())}
        _save_checkpoint(
            checkpoint,
            {
                "config": asdict(config),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "epoch": epoch + 1,
                "history": history,
                "seconds": elapsed,
                "best": best,
            },
        )
        with atomic_write(out_dir / "history.json") as f:
            f.write(json.dumps(history, indent=1).encode())
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}", test=f"{test_acc:.4f}")
        if on_epoch is not None:
            on_epoch(record)
        if config.max_steps is not None and steps_done >= config.max_steps:
            break
    if bar is not None:
        bar.close()
    params = _export(config, model, history, best, elapsed)
    if history:
        try:
            from ..plot import training_curves

            training_curves(history, out_dir / "curves.png", title=f"{config.network} training")
        except MissingExtraError:
            pass  # curves are a nicety: without matplotlib, training and export still succeed
    test_accuracy = float((Classifier(config.network, params).predict(test_x) == test_y).mean()) if len(test_y) else 0.0
    return TrainResult(params, model, history, elapsed, test_accuracy)


def _load_checkpoint(run_dir: str | os.PathLike) -> tuple[Path, dict, TrainConfig]:
    """(path, state, config) of a training run folder's checkpoint, or a BnnError naming it."""
    checkpoint = Path(run_dir) / "checkpoint.pt"
    if not checkpoint.is_file():
        raise BnnError(f"{checkpoint}: no checkpoint in this folder (is it a training run folder?)")
    try:
        state = torch.load(checkpoint, weights_only=False)
        return checkpoint, state, TrainConfig(**state["config"])
    except Exception as exc:  # a truncated or foreign file: say which, not a traceback
        raise BnnError(f"{checkpoint}: not a bnn training checkpoint ({exc})") from None


def _initial_weights(config: TrainConfig) -> dict:
    """The state dict `config.init` names: that run's selected epoch (its last when it had no validation)."""
    checkpoint, state, source = _load_checkpoint(config.init)
    for key in ("network", "classes", "validation", "seed"):
        if getattr(source, key) != getattr(config, key):
            # seed and validation define the held-out split: another would have been trained on.
            raise BnnError(
                f"{checkpoint}: was trained with {key} {getattr(source, key)!r}, this run has "
                f"{getattr(config, key)!r}; starting from it needs the same {key}"
            )
    return state["best"]["model"] if state["best"]["model"] is not None else state["model"]


def _with_data_files(config: TrainConfig) -> TrainConfig:
    """`config` with each empty data file replaced by the MNIST file found for it."""
    stems = {
        "train_images": "train-images-idx3-ubyte",
        "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte",
        "test_labels": "t10k-labels-idx1-ubyte",
    }
    found = {k: str(mnist_file(stem)) for k, stem in stems.items() if not getattr(config, k)}
    return dataclasses.replace(config, **found)


def _portable(config: dict) -> dict:
    """The config as a set records it: data files by name, not by this machine's paths."""
    files = ("train_images", "train_labels", "test_images", "test_labels", "data", "init")
    return {k: Path(v).name if k in files and v else v for k, v in config.items()}


def _export(config: TrainConfig, model, history: list[dict], best: dict, elapsed: float) -> ParamSet:
    """The parameter set of a run: its best validation epoch (else its last), with provenance."""
    chosen = len(history)
    if best["model"] is not None:
        model.load_state_dict(best["model"])
        chosen = best["epoch"]
    model.eval()
    metadata = {
        "trained_by": "bnn.train",
        "config": _portable(asdict(config)),
        "epochs_run": len(history),
        "epoch_selected": chosen,
        "selected_by": "validation accuracy" if best["model"] is not None else "last epoch",
        "validation_accuracy_torch": best["validation_accuracy"] if best["model"] is not None else None,
        "train_seconds": round(elapsed, 1),
        "torch": torch.__version__,
        "test_accuracy_torch": history[chosen - 1]["test_accuracy"] if history else None,
    }
    if config.data:
        split = "test/ folder" if (Path(config.data) / "test").is_dir() else f"{config.test_fraction:.0%} held out"
        metadata.update(preprocessing=PREPROCESSING, test_split=split)
    return export_params(model, config.classes, metadata=metadata)


def export_run(run_dir: str | os.PathLike) -> ParamSet:
    """The parameter set of a training run folder, from its checkpoint, as `train` exports it."""
    _, state, config = _load_checkpoint(run_dir)
    model = LFC(network_spec(config.network).activation_bits, len(config.classes))
    model.load_state_dict(state["model"])
    return _export(config, model, state["history"], state["best"], state["seconds"])
