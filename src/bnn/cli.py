"""The ``bnn`` command. ``bnn --help`` lists the subcommands; each has ``--help``.

Exit codes: 0 success, 1 an error in the input (one line on stderr, no
traceback), 2 a usage error.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import click
import numpy as np

from .classifier import Classifier
from .datasets import mnist_file
from .errors import BnnError, DownloadError
from .formats import idx
from .formats.folders import is_folder_dataset, labelled_pictures
from .formats.images import MAX_PIXELS
from .metrics import confusion_matrix
from .paramset import CNV_NETWORKS, DECISION_RULES, LFC_NETWORKS, NETWORKS
from .results import ResultWriter, result_row
from .runtimes import RUNTIMES


def _fail(message: str) -> None:
    raise click.ClickException(message)


class _Group(click.Group):
    """Turns the package's own errors into one line and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (BnnError, FileNotFoundError, FileExistsError, IsADirectoryError, PermissionError) as exc:
            raise click.ClickException(str(exc)) from None


network_option = click.option(
    "--network",
    "-n",
    type=click.Choice(list(NETWORKS)),
    default=None,
    help="Default: lfcW1A1, or the network of a QONNX --params file.",
)
params_option = click.option(
    "--params", "-p", default=None, help="Parameter-set name, folder or .onnx file (default: mnist, cifar10 for CNV)."
)
runtime_option = click.option("--runtime", type=click.Choice(sorted(RUNTIMES)), default="native", show_default=True)
data_option = click.option(
    "--data", default=None, help="Folder with the MNIST IDX files (default: $BNN_DATA, else the download cache)."
)
kernel_option = click.option(
    "--kernel",
    default=None,
    help="Force a native kernel: avx512, avx512-bitslice, avx2-bitslice, avx2, neon, portable-bitslice, portable.",
)
device_option = click.option(
    "--device", default=None, help="Torch device for --runtime torch: cpu, cuda, cuda:1, mps (default: the best)."
)
decision_option = click.option(
    "--decision", type=click.Choice(list(DECISION_RULES)), default=None, help="Override the set's rule."
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bitexact-bnn")
def cli():
    """BNN-PYNQ's networks, bit-exact with the FPGA: LFC (MNIST; W1A1, W1A2) and CNV (CIFAR-10, road
    signs, house numbers; W1A1, W1A2, W2A2)."""


@cli.command()
@click.argument("family", type=click.Choice(["lfc", "cnv"]), default="lfc")
@click.option(
    "--data",
    default=None,
    help="lfc: the MNIST IDX folder (default: $BNN_DATA, else the download cache); "
    "cnv: a CIFAR-10 test batch, or a folder holding one (test_batch.bin, ...).",
)
@click.option("--params", "-p", default=None, help="Parameter-set name or folder (default: mnist / cifar10).")
@click.option("--download", is_flag=True, help="lfc: download MNIST into the cache first when it is not found.")
def demo(family, data, params, download):
    """An original notebook's main job: LFC-QNN_MNIST (default) or CNV-QNN_Cifar10_Testset (cnv).

    Classifies the test set with each network of the family on the native
    runtime, printing the notebook's timing lines and accuracy; for lfc, then
    the numpy reference on the first 10 images, as the notebook did.
    """
    if family == "cnv":
        _demo_cnv(data, params or "cifar10")
        return
    from .compat import RUNTIME_HW, RUNTIME_SW, LfcClassifier
    from .datasets import download_mnist

    params = params or "mnist"
    try:
        mnist_file("t10k-images-idx3-ubyte", data)
    except DownloadError as exc:
        if not download or data is not None:
            raise DownloadError(f"{exc}; or run 'bnn demo --download'") from None
        download_mnist()
    images_path = mnist_file("t10k-images-idx3-ubyte", data)
    labels = idx.read_labels(mnist_file("t10k-labels-idx1-ubyte", data))
    images = idx.read_images(images_path)
    for network in LFC_NETWORKS:
        clf = LfcClassifier(network, params, RUNTIME_HW)
        click.echo(f"\n{network} on {clf.kernel} ({clf.params.source}, decision {clf.decision}):")
        result = clf.classify_mnists(str(images_path))
        accuracy = 100 * np.mean(np.asarray(result) == labels)
        click.echo(f"Accuracy {network}: {accuracy:.2f} %")
        sw = LfcClassifier(network, params, RUNTIME_SW)
        click.echo(f"{network} numpy reference, first 10 images:")
        sw.classify_mnists(images[:10])


def _cifar_test_batch(data: str | None) -> Path:
    """The CIFAR-10 test batch `data` names: the file itself, or the test batch in that folder ($BNN_DATA)."""
    from .formats import cifar

    path = Path(data or os.environ.get("BNN_DATA", "."))
    if not path.exists():
        _fail(f"{path}: not found; give a CIFAR-10 test batch (test_batch.bin) or the folder holding it with --data")
    if path.is_dir():
        batches = sorted(p for p in path.iterdir() if p.is_file() and cifar.is_batch_name(p.name) and "test" in p.name)
        if not batches:
            _fail(f"{path}: no CIFAR-10 test batch here (test_batch.bin or test_batch); give one with --data")
        path = batches[0]
    return path


def _demo_cnv(data: str | None, params: str) -> None:
    """CNV-QNN_Cifar10_Testset: the three cifar10 networks on a CIFAR-10 test batch, timing and accuracy."""
    from .compat import RUNTIME_HW, CnvClassifier
    from .formats import cifar

    path = _cifar_test_batch(data)
    labels = np.concatenate([lab for _, lab in cifar.iter_batch(path)])
    click.echo(f"{path}: {len(labels)} CIFAR-10 test images")
    for network in CNV_NETWORKS:
        clf = CnvClassifier(network, params, RUNTIME_HW)
        click.echo(f"\n{network} on {clf.runtime}/{clf.kernel} ({clf.params.source}, decision {clf.decision}):")
        result = clf.classify_cifars(str(path))
        click.echo(f"Accuracy {network}: {100 * np.mean(result == labels):.2f} %")


def _load_inputs(clf, paths: tuple[str, ...]):
    """(names, images (N, P) uint8) of the files `paths` name (`bnn.inputs.expand`) for `clf`'s network:
    pictures as `clf.preprocess` makes them, dataset files (IDX or CIFAR-10 batches) image by image."""
    from .inputs import data_files, runs

    files = data_files(clf.params.spec.convolutional)
    names, arrays = [], []
    for pictures, group in runs(paths, files):
        if pictures:
            arrays.append(clf.decode(group, progress=len(group) > 1000).reshape(len(group), -1))
            names += group
            continue
        images = list(files.read(group[0], 0, None, 1 << 30))  # the whole file, read once
        total = sum(len(part) for part in images)
        arrays += images
        names += [f"{group[0]}[{i}]" for i in range(total)]
    return names, np.concatenate(arrays) if arrays else np.zeros((0, clf.params.image_bytes), np.uint8)


def classifier_options(command):
    """The options that choose a classifier: network, parameter set, runtime, kernel, device, rule."""
    for option in (decision_option, device_option, kernel_option, runtime_option, params_option, network_option):
        command = option(command)
    return command


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@classifier_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
@click.option(
    "--scheduler",
    default=None,
    help="Run on Dask: a scheduler address, or local[:N] for N local worker processes (default N: the cores).",
)
@click.option(
    "--output", type=click.Path(dir_okay=False), default=None, help="Write the results to FILE.csv or FILE.npy instead."
)
def classify(paths, network, params, runtime, kernel, device, decision, as_json, as_csv, scheduler, output):
    """Classify dataset files (IDX for the LFC networks, CIFAR-10 batches for the CNV ones), pictures
    (PNG, JPEG, ...) or folders of them.

    With --scheduler the files are cut into chunks that Dask workers read
    and classify; the output is the same. --output streams the results to a
    CSV (input,class,label) or .npy (int32 classes) file, written as the
    chunks finish and renamed into place at the end.
    """
    if output and Path(output).suffix not in (".csv", ".npy"):
        _fail(f"{output}: --output must end in .csv or .npy")
    threads = None
    if scheduler:
        from .distributed import local_workers

        # Local worker processes share this machine's cores: each native call gets its share.
        workers = local_workers(scheduler)
        threads = max(1, (os.cpu_count() or 1) // workers) if workers else None
    clf = Classifier(network, params, runtime, kernel=kernel, device=device, decision=decision, threads=threads)
    if scheduler:
        _classify_on_cluster(clf, paths, scheduler, output, as_json, as_csv)
        return
    names, images = _load_inputs(clf, paths)
    out = clf.infer(images)
    if output:
        with ResultWriter(output, clf.classes, len(names)) as writer:
            writer.write(names, out.classes)
    else:
        _print_rows(clf, names, out.classes, out.scores, as_json, as_csv)
    click.echo(f"{len(names)} images, {clf.usec_per_image:.2f} us per image ({clf.kernel})", err=True)


def _print_rows(clf, names, classes, scores, as_json: bool, as_csv: bool) -> None:
    if as_json:
        for name, c, s in zip(names, classes, scores):
            click.echo(json.dumps(result_row(name, c, clf.classes, s)))
    elif as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["input", "class", "label"])
        for name, c in zip(names, classes):
            writer.writerow([name, int(c), clf.classes[c]])
    else:
        width = max(len(n) for n in names) if names else 5
        click.echo(f"{'input':<{width}}  class")
        for name, c in zip(names, classes):
            click.echo(f"{name:<{width}}  {clf.classes[c]}")


def _classify_on_cluster(clf, paths, scheduler: str, output: str | None, as_json: bool, as_csv: bool) -> None:
    from .distributed import classify_files, classify_to_file, make_client, plan
    from .inputs import data_files

    chunks = plan(paths, files=data_files(clf.params.spec.convolutional))  # headers and listings: nothing loaded
    total = sum(c.size for c in chunks)
    with make_client(scheduler) as client:
        if output:
            result = classify_to_file(client, clf, chunks, output, progress=True)
        else:
            result = classify_files(client, clf, chunks, scores=as_json, progress=True)
    if not output:
        ok = result.classes >= 0
        names = [n for n, good in zip(result.names, ok) if good]
        scores = result.scores[ok] if result.scores is not None else np.zeros((int(ok.sum()), 0), np.int32)
        _print_rows(clf, names, result.classes[ok], scores, as_json, as_csv)
    click.echo(f"{total} images on {scheduler} ({len(chunks)} chunks; paths sent to the workers absolute)", err=True)
    if result.errors:
        _fail(
            f"{len(result.errors)} chunk(s) failed, the other results are "
            + (f"in {output}" if output else "printed above")
            + ":\n  "
            + "\n  ".join(result.errors)
            + "\nfix or remove the files named and run the command again"
        )


@cli.command()
@classifier_options
@data_option
@click.option("--images", type=click.Path(), help="IDX3 images (instead of --data).")
@click.option("--labels", type=click.Path(), help="IDX1 labels (instead of --data).")
@click.option(
    "--plot", type=click.Path(), help="Save the confusion matrix here (PNG) and misclassified digits beside it."
)
def evaluate(network, params, runtime, kernel, device, decision, data, images, labels, plot):
    """Accuracy, per-class accuracy and confusion matrix on a labelled test set.

    The test set is MNIST (--data, or --images and --labels as IDX files)
    for an LFC, a CIFAR-10 batch (--images FILE, or --data holding
    test_batch.bin) for a CNV, or a folder of class subfolders of pictures
    (its test/ when it has one).
    """
    clf = Classifier(network, params, runtime, kernel=kernel, device=device, decision=decision)
    n = len(clf.classes)
    if data is not None and not (images or labels) and is_folder_dataset(data):
        x, y, _ = labelled_pictures(data, clf.classes)
        pred = clf.predict(x)
        pick = lambda wrong: x[wrong]  # noqa: E731 - the pictures are in memory already
    elif clf.params.spec.convolutional:  # a CIFAR-10 batch: its records carry their labels
        from .formats import cifar

        batch = _cifar_test_batch(images or data)
        x, y = cifar.read_batch(batch)
        if len(y) and y.max() >= n:
            _fail(f"{batch}: label {y.max()} but the parameter set has {n} classes")
        pred = clf.predict(x)
        pick = lambda wrong: x[wrong]  # noqa: E731
    else:
        images_path = Path(images) if images else mnist_file("t10k-images-idx3-ubyte", data)
        labels_path = Path(labels) if labels else mnist_file("t10k-labels-idx1-ubyte", data)
        # Labels and the images' header are checked before any inference; the images are streamed.
        y = idx.read_labels(labels_path)
        n_images = idx.read_header(images_path).shape[0]
        if n_images != len(y):
            _fail(f"{images_path}: {n_images} images but {labels_path} has {len(y)} labels")
        if len(y) and y.max() >= n:
            _fail(f"{labels_path}: label {y.max()} but the parameter set has {n} classes")
        pred = clf.predict_file(images_path, progress=True)
        pick = lambda wrong: _pick_images(images_path, wrong)  # noqa: E731
    correct = int((pred == y).sum())
    click.echo(f"{clf.network} {clf.params.source} ({clf.runtime}/{clf.kernel}, decision {clf.decision})")
    click.echo(f"accuracy: {correct}/{len(y)} = {100 * correct / max(len(y), 1):.2f} %")
    click.echo(f"time: {clf.usec_per_image:.3f} us per image")
    cm = confusion_matrix(y, pred, n)
    click.echo(
        "per class: " + "  ".join(f"{clf.classes[c]}: {100 * cm[c, c] / max(cm[c].sum(), 1):.1f}%" for c in range(n))
    )
    click.echo("confusion matrix (rows: true, columns: predicted):")
    label = max(len(c) for c in clf.classes)
    cell = max(5, label)
    click.echo(f"  {'':>{label}} " + " ".join(f"{c:>{cell}}" for c in clf.classes))
    for c in range(n):
        click.echo(f"  {clf.classes[c]:>{label}} " + " ".join(f"{v:{cell}d}" for v in cm[c]))
    if plot:
        from . import plot as plots

        path = plots.confusion_matrix(
            cm, clf.classes, plot, title=f"{clf.network}: {100 * correct / max(len(y), 1):.2f} %"
        )
        wrong = np.flatnonzero(pred != y)
        shown = pick(wrong[:40])
        grid = plots.misclassified_grid(
            shown, y[wrong], pred[wrong], clf.classes, path.with_name(path.stem + "-errors.png")
        )
        click.echo(f"saved {path} and {grid}")


def _pick_images(path: Path, indices: np.ndarray) -> np.ndarray:
    """The images at sorted `indices` of an IDX file, streamed (memory: one chunk and the picks)."""
    picked, start = [], 0
    for chunk in idx.iter_images(path):
        inside = indices[(indices >= start) & (indices < start + len(chunk))]
        picked.append(chunk[inside - start])
        start += len(chunk)
    return np.concatenate(picked) if picked else np.zeros((0, 28, 28), np.uint8)


@cli.command()
@click.option("--quick", is_flag=True, help="Fewer, shorter runs (a smoke test, not for the record).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the Markdown report to this new file (an existing one only with --overwrite).",
)
@click.option("--overwrite", is_flag=True, help="Let --output replace an existing file.")
@data_option
@click.option(
    "--params-dir",
    default=None,
    help="Folder holding lfcW1A1/ and lfcW1A2/ (default: the shipped mnist sets).",
)
@click.option("--big-file", is_flag=True, help="Also classify a generated 1,000,000-image IDX file and report memory.")
@click.option(
    "--cifar",
    default=None,
    help="A CIFAR-10 test batch, or the folder holding one, for the CNV rows (default: none, LFC rows only).",
)
def bench(quick, output, overwrite, data, params_dir, big_file, cifar):
    """Benchmark every runtime and kernel side by side (images/s, median of runs)."""
    from .bench import run_benchmarks

    if output and Path(output).exists() and not overwrite:  # checked before minutes of measuring
        _fail(f"{output} exists (a curated BENCHMARKS.md?): choose a new file, or add --overwrite")
    report = run_benchmarks(
        data_dir=data,
        params_dir=params_dir,
        cifar_batch=_cifar_test_batch(cifar) if cifar else None,
        quick=quick,
        big_file=big_file,
        log=lambda s: click.echo(s, err=True),
    ).markdown
    click.echo(report)
    if output:
        from ._atomic import atomic_write

        with atomic_write(Path(output)) as f:
            f.write(report.encode())
        click.echo(f"wrote {output}", err=True)


@cli.command()
@network_option
@click.option("--epochs", default=180, show_default=True)
@click.option("--batch-size", default=100, show_default=True)
@click.option("--lr", default=3e-3, show_default=True)
@click.option("--max-shift", default=2, show_default=True, help="Random shift augmentation, pixels.")
@click.option("--seed", default=0, show_default=True)
@click.option("--validation", default=0, show_default=True, help="Training images held out to select the epoch.")
@click.option("--label-smoothing", default=0.0, show_default=True)
@click.option("--distill", default=0.0, show_default=True, help="Weight of distillation from a float CNN teacher.")
@click.option(
    "--init",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="Start from this run folder's selected weights (same network, classes and validation split).",
)
@click.option("--threads", default=None, type=int, help="Torch threads (default: all).")
@click.option(
    "--data",
    default=None,
    help="MNIST IDX folder (default: $BNN_DATA, else the download cache) or a folder of class subfolders of pictures.",
)
@click.option("--train-images", default=None)
@click.option("--train-labels", default=None)
@click.option("--test-images", default=None)
@click.option("--test-labels", default=None)
@click.option("--classes", "classes_file", default=None, type=click.Path(), help="File with one class name per line.")
@click.option(
    "--test-fraction", default=0.2, show_default=True, help="Pictures held out for testing (folder data without test/)."
)
@click.option("--out", required=True, type=click.Path(), help="Run folder: checkpoint, history, curves (resumes).")
@click.option("--export", "export_dir", default=None, type=click.Path(), help="Write the parameter folder here.")
@click.option("--overwrite", is_flag=True, help="Replace the files of an existing --export folder.")
def train(
    network,
    epochs,
    batch_size,
    lr,
    max_shift,
    seed,
    validation,
    label_smoothing,
    distill,
    init,
    threads,
    data,
    train_images,
    train_labels,
    test_images,
    test_labels,
    classes_file,
    test_fraction,
    out,
    export_dir,
    overwrite,
):
    """Train an LFC network (needs torch) and export a parameter folder.

    --data is a folder of MNIST IDX files, or a folder of pictures: one
    subfolder per class (the folder names are the class names), or train/
    and test/ organised so; without test/, --test-fraction of each class is
    held out for testing.
    """
    from .params import write_params
    from .train import TrainConfig
    from .train import train as run_training

    kwargs = {}
    if data is not None and is_folder_dataset(data):
        if any((train_images, train_labels, test_images, test_labels, classes_file)):
            _fail(f"{data}: a folder of pictures names its own classes and test set; drop the IDX options")
        kwargs = {"data": str(data), "test_fraction": test_fraction}
    else:
        kwargs = {
            "train_images": train_images or str(mnist_file("train-images-idx3-ubyte", data)),
            "train_labels": train_labels or str(mnist_file("train-labels-idx1-ubyte", data)),
            "test_images": test_images or str(mnist_file("t10k-images-idx3-ubyte", data)),
            "test_labels": test_labels or str(mnist_file("t10k-labels-idx1-ubyte", data)),
        }
        if classes_file:
            kwargs["classes"] = [line.strip() for line in Path(classes_file).read_text().splitlines() if line.strip()]
    config = TrainConfig(
        network=network or "lfcW1A1",
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_shift=max_shift,
        seed=seed,
        validation=validation,
        label_smoothing=label_smoothing,
        distill=distill,
        init=str(init or ""),
        threads=threads,
        **kwargs,
    )

    def report(r):
        click.echo(
            f"epoch {r['epoch']:4d}  loss {r['loss']:.4f}  train {100 * r['train_accuracy']:.2f} %  "
            + (f"val {100 * r['validation_accuracy']:.2f} %  " if r["validation_accuracy"] is not None else "")
            + f"test {100 * r['test_accuracy']:.2f} %  {r['seconds']:.0f} s",
            err=True,
        )

    result = run_training(config, out, on_epoch=report)
    folder = write_params(result.params, export_dir or Path(out) / "params", overwrite=overwrite or not export_dir)
    selected = result.params.metadata.get("epoch_selected")
    click.echo(
        f"exported {folder}: {100 * result.test_accuracy:.2f} % on the test images "
        f"(epoch {selected} of {len(result.history)}, decision {result.params.decision})"
    )


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("folder", type=click.Path())
@click.option("--overwrite", is_flag=True)
def export(run_dir, folder, overwrite):
    """Export a training run folder's selected epoch (from its checkpoint.pt) as a parameter folder."""
    from .params import write_params
    from .train import export_run

    click.echo(f"wrote {write_params(export_run(run_dir), folder, overwrite=overwrite)}")


@cli.group()
def params():
    """List, inspect and convert parameter sets."""


@params.command("list")
def params_list():
    """Parameter sets found for each network, and where."""
    from .params import available_params as available
    from .params import find_params, search_path

    click.echo("search path: " + os.pathsep.join(str(p) for p in search_path()))
    for network in NETWORKS:
        for name in available(network):
            click.echo(f"{network:8} {name:12} {find_params(network, name)}")


@params.command("show")
@click.argument("name")
@network_option
def params_show(name, network):
    """Geometry, classes, decision rule and provenance of a parameter set (a name, folder or .onnx file)."""
    from .params import load_params

    p = load_params(network, name)
    click.echo(f"{p.network} at {p.source}")
    for i, layer in enumerate(p.layers):
        c = layer.conv
        kind = (
            f"conv {c.kernel}x{c.kernel} {c.channels}x{c.size}x{c.size}{' + pool' if c.pool else ''}"
            if c
            else "fully connected"
        )
        click.echo(
            f"  layer {i}: {layer.mw:5d} -> {layer.mh:5d}  PE {layer.pe:3d}  SIMD {layer.simd:3d}  "
            f"thresholds/neuron {layer.n_thresholds}  weights {layer.weight_bits}-bit  {kind}"
        )
    click.echo(f"  classes ({len(p.classes)}): {', '.join(p.classes)}")
    t = p.pixel_thresholds
    if p.spec.convolutional:
        pixels = "32x32 RGB, 8-bit fixed point q/128 = 2p/255 - 1"
    elif len(t) == 1:
        pixels = f"bit p >= {t[0]}"
    else:
        pixels = f"3 levels: -1, 0 from p >= {t[0]}, +1 from p >= {t[1]}"
    click.echo(f"  pixels: {pixels}")
    click.echo(f"  decision: {p.decision}")
    for key in ("trained_by", "epochs_run", "train_seconds", "test_accuracy_torch"):
        if key in p.metadata:
            click.echo(f"  {key}: {p.metadata[key]}")


@params.command("convert")
@click.argument("source")
@click.argument("dest", type=click.Path())
@network_option
@click.option("--decision", type=click.Choice(list(DECISION_RULES)), default=None, help="Record this rule.")
@click.option("--topk", is_flag=True, help="QONNX: end with TopK(k=1) (FINN's LabelSelect) instead of the scores.")
@click.option(
    "--input-shape", type=click.Choice(["1,784", "1,1,28,28"]), default="1,784", show_default=True, help="QONNX input."
)
def params_convert(source, dest, network, decision, topk, input_shape):
    """Convert SOURCE (a set name, folder or QONNX .onnx file) to DEST: a parameter folder, or DEST.onnx.

    The QONNX model takes raw pixels (0..255, float32) and outputs the last
    layer's accumulators, exactly `Classifier.infer(x).scores`, in the form
    Brevitas writes for its bnn_pynq networks (for FINN).
    """
    from .params import load_params, write_params

    p = load_params(network, source)
    if decision:
        p.decision = decision
    if Path(dest).suffix == ".onnx":
        from .formats.qonnx import write_qonnx

        shape = tuple(int(v) for v in input_shape.split(","))
        click.echo(f"wrote {write_qonnx(p, dest, input_shape=shape, topk=topk)}")
    else:
        click.echo(f"wrote {write_params(p, dest)}")


@cli.command()
@click.argument("dataset", type=click.Choice(["mnist"]))
@click.option("--cache-dir", type=click.Path(), default=None, help="Default: $XDG_CACHE_HOME/bnn.")
@click.option("--url", default=None, help="Base URL or local folder to download from.")
def download(dataset, cache_dir, url):
    """Download a dataset's IDX files into the cache (SHA-256 checked, resumable)."""
    from .datasets import download_mnist

    for path in download_mnist(cache_dir=cache_dir, base_url=url):
        click.echo(str(path))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--network", "-n", "networks", multiple=True, type=click.Choice(list(NETWORKS)), help="Repeatable (default: all)."
)
@params_option
@runtime_option
@kernel_option
@device_option
@click.option("--no-batching", is_flag=True, help="One runtime call per request.")
@click.option("--max-batch", default=1024, show_default=True, help="Most images gathered into one call.")
@click.option("--max-wait-ms", default=2.0, show_default=True, help="Longest a request waits for others, ms.")
@click.option("--max-body", default=8 << 20, show_default=True, help="Largest request body, bytes (413 above).")
@click.option(
    "--max-pixels",
    default=MAX_PIXELS,
    show_default=True,
    help="Largest picture, pixels (400 above; large ones are decoded reduced).",
)
@click.option("--max-connections", default=64, show_default=True, help="Connections served at once (503 above).")
@click.option(
    "--request-timeout", default=60.0, show_default=True, help="Longest a request waits for its classes, s (503)."
)
def serve(
    host,
    port,
    networks,
    params,
    runtime,
    kernel,
    device,
    no_batching,
    max_batch,
    max_wait_ms,
    max_body,
    max_pixels,
    max_connections,
    request_timeout,
):
    """An HTTP service and a draw-a-digit page (needs the [serve] extra).

    GET / is the page; POST /v1/classify takes PNG/JPEG pictures, IDX files
    or multipart uploads; /docs lists the API. Ctrl-C or SIGTERM stops it
    after the requests in flight.
    """
    from .serve import create_app

    try:
        import uvicorn
    except ImportError:
        _fail("the service needs uvicorn: pip install 'bitexact-bnn[serve]'")
    classifiers = {
        n: Classifier(n, params, runtime, kernel=kernel, device=device)
        for n in (networks or (LFC_NETWORKS if params else tuple(NETWORKS)))
    }
    app = create_app(
        classifiers,
        batching=not no_batching,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_body=max_body,
        max_pixels=max_pixels,
        request_timeout=request_timeout,
    )
    click.echo(f"serving {', '.join(classifiers)} on http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        limit_concurrency=max_connections,
        timeout_graceful_shutdown=request_timeout,
    )


@cli.command()
def info():
    """The native runtime, kernels and CPU this installation runs on."""
    from .info import runtime_info

    for key, value in runtime_info(devices=True).items():
        click.echo(f"{key}: {value}")


def main(argv=None) -> int:
    try:
        cli.main(args=argv, prog_name="bnn", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
