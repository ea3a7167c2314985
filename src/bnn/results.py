"""Classification results as people and programs read them: one JSON row, and files streamed in order.

The same row is what ``bnn classify --json`` prints per image and what the
service answers per image (``{"input", "class", "label", "scores"}``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

__all__ = ["ResultWriter", "result_row"]


def result_row(name: str, class_index: int, classes: list[str], scores: np.ndarray) -> dict:
    """One image's result: its input name, class index, class label and last-layer scores."""
    return {"input": name, "class": int(class_index), "label": classes[class_index], "scores": scores.tolist()}


class ResultWriter:
    """Results streamed in input order to ``.PATH.part`` beside `path`, renamed into place on success.

    A ``.csv`` gets ``input,class,label`` rows; a ``.npy`` the (N,) int32
    classes, -1 where an image was skipped (`skip`). On an error the partial
    file is removed and `path` is left as it was.
    """

    SUFFIXES = (".csv", ".npy")

    def __init__(self, path: str | os.PathLike, classes: list[str], total: int):
        self.path, self.classes, self.done = Path(path), classes, 0
        if self.path.suffix not in self.SUFFIXES:
            raise ValueError(f"{path}: results are written to .csv or .npy files")
        self.tmp = self.path.with_name(f".{self.path.name}.part")
        if self.path.suffix == ".npy":
            self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.int32, shape=(total,))
            self.array[:] = -1  # what no chunk has filled stays -1
        else:
            self.file = open(self.tmp, "w", newline="")
            self.csv = csv.writer(self.file)
            self.csv.writerow(["input", "class", "label"])

    def write(self, names: list[str], classes: np.ndarray) -> None:
        if self.path.suffix == ".npy":
            self.array[self.done : self.done + len(classes)] = classes
        else:
            self.csv.writerows([name, int(c), self.classes[c]] for name, c in zip(names, classes))
        self.done += len(classes)

    def skip(self, count: int) -> None:
        """Leave `count` images (a failed chunk) out: -1 in .npy, no rows in CSV."""
        self.done += count

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.path.suffix == ".npy":
            self.array.flush()
            del self.array
        else:
            self.file.close()
        if exc[0] is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
