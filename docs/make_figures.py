"""Make the README's figures from the shipped parameter sets (run from the repository root).

    python docs/make_figures.py      # writes docs/*.png, about 30 s

Time per image: the native runtime (batch of 10,000, median of 5 runs) and
the numpy reference (batch of 1,000), beside the original's FPGA and ARM
figures. Confusion matrices: the shipped sets on the MNIST test set.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import bnn
from bnn import plot
from bnn.formats import idx
from bnn.metrics import confusion_matrix

DATA = Path("../shared/data/mnist")
DOCS = Path(__file__).resolve().parent


def usec_per_image(clf: bnn.Classifier, images, runs: int) -> float:
    clf.predict(images)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        clf.predict(images)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6 / len(images)


def main() -> None:
    images = idx.read_images(DATA / "t10k-images-idx3-ubyte.gz")
    labels = idx.read_labels(DATA / "t10k-labels-idx1-ubyte.gz")
    timings = {}
    for network in ("lfcW1A1", "lfcW1A2"):
        native = bnn.Classifier(network, "mnist")
        timings[(network, f"bnn native ({native.kernel}, 2 cores)")] = usec_per_image(native, images, 5)
        reference = bnn.Classifier(network, "mnist", "reference")
        timings[(network, "bnn numpy reference")] = usec_per_image(reference, images[:1000], 3)
        predicted = native.predict(images)
        accuracy = 100 * (predicted == labels).mean()
        plot.confusion_matrix(
            confusion_matrix(labels, predicted, len(native.classes)),
            native.classes,
            DOCS / f"confusion_{network}.png",
            title=f"{network} (shipped weights, {native.decision}): {accuracy:.2f} %",
        )
        print(f"{network}: {accuracy:.2f} %")
    plot.time_per_image(timings, DOCS / "time_per_image.png")
    for key, us in timings.items():
        print(key, f"{us:.3f} us")


if __name__ == "__main__":
    main()
