"""Train LFC W1A1 / W1A2 with PyTorch and export exact BNN-PYNQ parameter folders.

Needs the ``train`` extra (``pip install torch==2.13.0 'bnn[train]'``).

    >>> from bnn.train import TrainConfig, train
    >>> result = train(TrainConfig(network="lfcW1A1", epochs=60), "runs/w1a1")
    >>> result.params            # ParamSet, exact: its classes are the model's
    >>> bnn.params.write_params(result.params, "my-params/mnist/lfcW1A1")

The model is what the hardware runs: inputs are the pixels' bits (p >= 128)
as +-1, weights are sign(latent) with a straight-through estimator, each
hidden layer is BatchNorm followed by the hardware's activation, the sign
(W1A1) or the 3-level {-1, 0, +1} with steps at -0.5 and +0.5 (W1A2). The
last layer has no per-class normalisation, only one shared positive scale,
so the argmax of its integer accumulators is the model's prediction; the
exported set says so (``"decision": "argmax"`` in bnn-meta.json).

Export folds each BatchNorm and activation into integer thresholds by
evaluating the trained float function at every possible integer
accumulator, so the thresholds reproduce the model's own float32 decisions
exactly; a neuron whose output falls as its accumulator rises gets its
weight row flipped. Layer 0 keeps the hardware's 48 padding columns (input
-1) as fixed weights, so the model computes the hardware's sums literally.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import idx
from ._atomic import atomic_write
from .bits import PIXEL_THRESHOLD
from .errors import BnnError
from .params import PIXELS, Layer, ParamSet, network_spec

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None
    nn = None

__all__ = ["LFC", "TrainConfig", "TrainResult", "export_params", "import_params", "load_dataset", "train"]


def _require_torch():
    if torch is None:
        raise BnnError("training needs PyTorch: pip install torch==2.13.0 'bnn[train]'")


# ------------------------------------------------------------------ the model


def levels(y, activation_bits: int):
    """The hardware's activation of a normalised value y: sign (y > 0) or 3 levels (steps at -0.5, +0.5)."""
    if activation_bits == 1:
        return torch.where(y > 0, 1.0, -1.0).to(y.dtype)
    return ((y > -0.5).to(y.dtype) + (y > 0.5).to(y.dtype)) - 1.0


if torch is not None:

    class _QuantSTE(torch.autograd.Function):
        """Forward: the hardware's activation; backward: straight through where |y| <= 1."""

        @staticmethod
        def forward(ctx, y, activation_bits):
            ctx.save_for_backward(y)
            return levels(y, activation_bits)

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * (y.abs() <= 1).to(grad.dtype), None

    class _SignSTE(torch.autograd.Function):
        """Weights: forward sign with sign(0) = +1 (bit 1), backward straight through."""

        @staticmethod
        def forward(ctx, w):
            return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)

        @staticmethod
        def backward(ctx, grad):
            return grad

    class LFC(nn.Module):
        """The LFC network as trained: 784 -> hidden x3 -> classes, binary weights.

        `forward` takes +-1 pixel bits (N, 784) float32 and returns logits
        (N, classes) = scale * last-layer dot products.
        """

        def __init__(self, activation_bits: int, n_classes: int, hidden: int = 1024, pad_columns: int = 48):
            super().__init__()
            self.activation_bits = activation_bits
            sizes = [PIXELS, hidden, hidden, hidden, n_classes]
            self.weights = nn.ParameterList(
                [nn.Parameter(torch.empty(o, i).uniform_(-1, 1)) for i, o in zip(sizes[:-1], sizes[1:])]
            )
            self.norms = nn.ModuleList([nn.BatchNorm1d(hidden) for _ in range(3)])
            # Layer 0's padding columns: fixed +-1 weights against a constant -1 input.
            self.register_buffer("pad_weights", -torch.ones(hidden, pad_columns))
            self.log_scale = nn.Parameter(torch.tensor(-0.5 * math.log(hidden)))

        def binary_weights(self, index: int):
            return _SignSTE.apply(self.weights[index])

        def dots(self, x):
            """Yield each layer's integer dot products (as float32), running the network forward."""
            d = x @ self.binary_weights(0).t() - self.pad_weights.sum(dim=1)
            for i, norm in enumerate(self.norms):
                yield d
                x = _QuantSTE.apply(norm(d), self.activation_bits)
                d = x @ self.binary_weights(i + 1).t()
            yield d

        def forward(self, x):
            *_, d = self.dots(x)
            return d * self.log_scale.exp()

        def clip_(self) -> None:
            """Keep latent weights in [-1, 1] (beyond, the STE gradient would never flip them back)."""
            with torch.no_grad():
                for w in self.weights:
                    w.clamp_(-1, 1)

else:  # pragma: no cover
    LFC = None


def pixels_to_inputs(images: np.ndarray):
    """(N, 28, 28) or (N, 784) uint8 -> (N, 784) float32 tensor of +-1 (pixel >= 128 is +1)."""
    flat = np.asarray(images).reshape(len(images), PIXELS)
    return torch.from_numpy(np.where(flat >= PIXEL_THRESHOLD, 1.0, -1.0).astype(np.float32))


# ------------------------------------------------------------------ export / import


def _output_bits(norm, d_values, boundary: float):
    """For each neuron (rows) and candidate dot value (columns): is the normalised value above `boundary`?"""
    with torch.no_grad():
        y = norm(d_values)  # eval-mode BatchNorm, the same float32 arithmetic as inference
    return (y > boundary).t().numpy()


def _fold_layer(norm, mw: int, activation_bits: int, w1a1_offset: int | None):
    """Integer thresholds in hardware accumulator units and the rows to flip, for one hidden layer.

    d ranges over every integer dot product -mw..mw. For a neuron whose
    output rises with d, T is the largest accumulator whose output is 0;
    a falling one is flipped (d -> -d) first.
    """
    norm = copy.deepcopy(norm).eval()
    d = torch.arange(-mw, mw + 1, dtype=torch.float32)
    grid = d.unsqueeze(1).expand(-1, norm.num_features).contiguous()
    boundaries = (0.0,) if activation_bits == 1 else (-0.5, 0.5)
    outs = [_output_bits(norm, grid, b) for b in boundaries]  # (neurons, 2mw+1)
    # Flip where the output falls with d (negative BatchNorm scale): judge by the first boundary's trend.
    falling = np.array([o[:, 0].astype(int) > o[:, -1].astype(int) for o in outs]).any(axis=0)
    thresholds = np.empty((norm.num_features, len(boundaries)), dtype=np.int64)
    d_np = d.numpy().astype(np.int64)
    for k, out in enumerate(outs):
        # A flipped row computes -d: its outputs over ascending d are the originals reversed.
        out = np.where(falling[:, None], out[:, ::-1], out)
        if not (np.diff(out.astype(np.int8), axis=1) >= 0).all():
            raise BnnError("a BatchNorm is not monotone in its input: cannot fold it into a threshold")
        # Last d whose output is 0 (d ascending after the flip); -mw-1 when none is.
        zeros = (~out).sum(axis=1)
        t_dot = np.where(zeros > 0, d_np[np.maximum(zeros - 1, 0)], -mw - 1)
        if w1a1_offset is not None:  # W1A1 accumulator = (d + mw) / 2
            thresholds[:, k] = np.floor_divide(t_dot + w1a1_offset, 2)
        else:
            thresholds[:, k] = t_dot
    return np.clip(thresholds, -32768, 32767), falling


def export_params(
    model, classes: list[str], *, metadata: dict | None = None, template: ParamSet | None = None
) -> ParamSet:
    """The `ParamSet` that computes exactly what `model` computes in eval mode.

    `template` (a set this model was imported from) supplies what training
    does not change: the last layer's padding rows and output thresholds.
    """
    _require_torch()
    bits = model.activation_bits
    network = "lfcW1A1" if bits == 1 else "lfcW1A2"
    spec = network_spec(network)
    layers = []
    with torch.no_grad():
        binary = [(model.weights[i] >= 0).numpy().astype(np.uint8) for i in range(4)]
    pad = (model.pad_weights > 0).numpy().astype(np.uint8)
    binary[0] = np.concatenate([binary[0], pad], axis=1)
    for i in range(3):
        w = binary[i]
        mw = w.shape[1]
        thresholds, flip = _fold_layer(model.norms[i], mw, bits, mw if bits == 1 else None)
        w = np.where(flip[:, None], 1 - w, w).astype(np.uint8)
        layers.append(Layer(w, thresholds, pe=spec.pe[i], simd=spec.simd[i]))
    n_classes, mw = binary[3].shape
    pe = spec.pe[3]
    mh = max(64, -(-n_classes // pe) * pe)
    last_w = np.zeros((mh, mw), dtype=np.uint8)
    last_w[:n_classes] = binary[3]
    # Output bit = dot > 0 (the bits only serve the highest-bit rule; argmax uses the accumulators).
    last_t = np.full((mh, 1), mw // 2 if bits == 1 else 0, dtype=np.int64)
    if template is not None and template.layers[3].mh == mh:
        last_w[n_classes:] = template.layers[3].weights[n_classes:]
        last_t = template.layers[3].thresholds.copy()
    layers.append(Layer(last_w, last_t, pe=pe, simd=spec.simd[3]))
    decision = template.decision if template is not None else "argmax"
    params = ParamSet(network, layers, list(classes), decision=decision, metadata=dict(metadata or {}))
    if template is not None:
        params.classes_newline = template.classes_newline
        params.classes_final_newline = template.classes_final_newline
    params.validate()
    return params


def import_params(params: ParamSet):
    """A `LFC` model that computes what `params` computes (to fine-tune an original set).

    Exporting it again without training gives the same parameter files.
    Each hidden layer's thresholds become a BatchNorm whose steps fall
    half-way between the integer accumulators that the thresholds separate.
    """
    _require_torch()
    params.validate()
    bits = params.activation_bits
    n_classes = len(params.classes)
    hidden = params.layers[0].mh
    model = LFC(bits, n_classes, hidden=hidden, pad_columns=params.layers[0].mw - PIXELS)
    with torch.no_grad():
        w0 = params.layers[0].weights.astype(np.float32) * 2 - 1
        model.weights[0].copy_(torch.from_numpy(w0[:, :PIXELS]))
        model.pad_weights.copy_(torch.from_numpy(w0[:, PIXELS:]))
        for i in (1, 2):
            model.weights[i].copy_(torch.from_numpy(params.layers[i].weights.astype(np.float32) * 2 - 1))
        model.weights[3].copy_(torch.from_numpy(params.layers[3].weights[:n_classes].astype(np.float32) * 2 - 1))
        for i in range(3):
            layer, norm = params.layers[i], model.norms[i]
            t = layer.effective_thresholds().astype(np.float64)
            # Thresholds in dot-product units: W1A1 acc = (d + mw) / 2 > T  <=>  d > 2T - mw.
            t_dot = 2 * t - layer.mw if bits == 1 else t
            if bits == 1:
                scale, shift = np.ones(len(t_dot)), -(t_dot[:, 0] + 0.5)
            else:
                lo, hi = np.minimum(t_dot[:, 0], t_dot[:, 1]), np.maximum(t_dot[:, 0], t_dot[:, 1])
                # Steps at lo + 0.5 -> -0.5 and hi + 0.5 -> +0.5; equal thresholds: one steep step.
                scale = np.where(hi > lo, 1.0 / np.maximum(hi - lo, 1), 1000.0)
                shift = -0.5 - scale * (lo + 0.5)
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
            norm.weight.copy_(torch.from_numpy(scale.astype(np.float32)))
            norm.bias.copy_(torch.from_numpy(shift.astype(np.float32)))
    model.template = params
    return model


# ------------------------------------------------------------------ data


def load_dataset(images_path, labels_path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28) uint8 images and (N,) int64 labels from two IDX files, checked to match."""
    images = idx.read_images(images_path)
    labels = idx.read_labels(labels_path).astype(np.int64)
    if len(images) != len(labels):
        raise BnnError(f"{images_path}: {len(images)} images but {labels_path} has {len(labels)} labels")
    return images, labels


def _shifted(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by a random whole number of pixels in -max_shift..max_shift (both axes)."""
    if max_shift == 0:
        return images
    n = len(images)
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    oy = rng.integers(0, 2 * max_shift + 1, n)
    ox = rng.integers(0, 2 * max_shift + 1, n)
    rows = (oy[:, None] + np.arange(28))[:, :, None]
    cols = (ox[:, None] + np.arange(28))[:, None, :]
    return padded[np.arange(n)[:, None, None], rows, cols]


# ------------------------------------------------------------------ training


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
    train_images: str = "../shared/data/mnist/train-images-idx3-ubyte.gz"
    train_labels: str = "../shared/data/mnist/train-labels-idx1-ubyte.gz"
    test_images: str = "../shared/data/mnist/t10k-images-idx3-ubyte.gz"
    test_labels: str = "../shared/data/mnist/t10k-labels-idx1-ubyte.gz"
    classes: list[str] = field(default_factory=lambda: [str(i) for i in range(10)])
    max_steps: int | None = None  # stop early (tests)
    validation: int = 0  # training images held out (stratified) to select the epoch; 0: keep the last epoch
    label_smoothing: float = 0.0
    distill: float = 0.0  # weight of the distillation loss from a small float CNN teacher; 0: no teacher
    distill_temperature: float = 2.0
    teacher_epochs: int = 4


@dataclass
class TrainResult:
    params: ParamSet
    model: object
    history: list[dict]
    seconds: float


def _accuracy(model, inputs, labels, batch: int = 2000) -> tuple[float, np.ndarray]:
    model.eval()
    preds = []
    with torch.no_grad():
        for s in range(0, len(inputs), batch):
            preds.append(model(inputs[s : s + batch]).argmax(dim=1))
    pred = torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)
    return float((pred == labels).mean()) if len(labels) else 0.0, pred


def split_validation(labels: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): `count` images held out, each class in proportion to its size."""
    if count <= 0:
        return np.arange(len(labels)), np.zeros(0, dtype=np.int64)
    if count >= len(labels):
        raise BnnError(f"a validation split of {count} images leaves none of the {len(labels)} to train on")
    rng = np.random.default_rng([seed, 7919])
    held = []
    classes, sizes = np.unique(labels, return_counts=True)
    # Largest-remainder apportionment: exactly `count` images in all.
    quota = sizes * count / len(labels)
    take = np.floor(quota).astype(np.int64)
    take[np.argsort(take - quota)[: count - int(take.sum())]] += 1
    for c, k in zip(classes, take):
        members = np.flatnonzero(labels == c)
        held.append(rng.choice(members, size=int(k), replace=False))
    validation = np.sort(np.concatenate(held))
    mask = np.ones(len(labels), dtype=bool)
    mask[validation] = False
    return np.flatnonzero(mask), validation


if torch is not None:

    class Teacher(nn.Module):
        """A small float CNN (about 99.2 % on MNIST after a few epochs) whose soft labels guide the student."""

        def __init__(self, n_classes: int):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            )
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, n_classes))

        def forward(self, images):
            """(N, 28, 28) uint8 tensor -> logits."""
            return self.head(self.features(images.unsqueeze(1).float() / 255.0))


def _train_teacher(config: TrainConfig, images, labels, n_classes: int, path: Path):
    """Train the distillation teacher once per run folder (cached in `path`)."""
    teacher = Teacher(n_classes)
    if path.exists():
        teacher.load_state_dict(torch.load(path, weights_only=True))
        return teacher.eval()
    optimizer = torch.optim.Adam(teacher.parameters(), lr=1e-3)
    for epoch in range(config.teacher_epochs):
        rng = np.random.default_rng([config.seed, 104729, epoch])
        order = rng.permutation(len(images))
        teacher.train()
        for s in range(0, len(order), config.batch_size):
            batch = order[s : s + config.batch_size]
            x = torch.from_numpy(_shifted(images[batch], config.max_shift, rng))
            loss = nn.functional.cross_entropy(teacher(x), torch.from_numpy(labels[batch]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with atomic_write(path) as f:
        torch.save(teacher.state_dict(), f)
    return teacher.eval()


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
    _require_torch()
    spec = network_spec(config.network)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
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
        teacher = _train_teacher(config, train_x, train_y, n_classes, out_dir / "teacher.pt")
    model = LFC(spec.activation_bits, n_classes)
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
        state = torch.load(checkpoint, weights_only=False)
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
            shifted = _shifted(train_x[batch], config.max_shift, rng)
            x = pixels_to_inputs(shifted)
            y = torch.from_numpy(train_y[batch])
            logits = model(x)
            loss = loss_fn(logits, y)
            if teacher is not None:
                with torch.no_grad():
                    soft = torch.softmax(teacher(torch.from_numpy(shifted)) / temperature, dim=1)
                kd = nn.functional.kl_div(
                    torch.log_softmax(logits / temperature, dim=1), soft, reduction="batchmean"
                )
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
    chosen = len(history)
    if best["model"] is not None:
        model.load_state_dict(best["model"])
        chosen = best["epoch"]
    model.eval()
    metadata = {
        "trained_by": "bnn.train",
        "config": asdict(config),
        "epochs_run": len(history),
        "epoch_selected": chosen,
        "selected_by": "validation accuracy" if best["model"] is not None else "last epoch",
        "validation_accuracy_torch": best["validation_accuracy"] if best["model"] is not None else None,
        "train_seconds": round(elapsed, 1),
        "torch": torch.__version__,
        "test_accuracy_torch": history[chosen - 1]["test_accuracy"] if history else None,
    }
    params = export_params(model, config.classes, metadata=metadata)
    if history:
        try:
            from .plot import training_curves

            training_curves(history, out_dir / "curves.png", title=f"{config.network} training")
        except ImportError:
            pass
    return TrainResult(params, model, history, elapsed)


def main(argv=None) -> int:
    """``python -m bnn.train``: the same as ``bnn train``."""
    from .cli import main as cli_main

    return cli_main(["train", *(argv if argv is not None else __import__("sys").argv[1:])])


if __name__ == "__main__":
    raise SystemExit(main())
