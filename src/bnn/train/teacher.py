"""The distillation teacher: a small float CNN whose soft labels guide the binarized student."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._atomic import atomic_write
from .data import shifted

__all__ = ["Teacher", "train_teacher"]


class Teacher(nn.Module):
    """A small float CNN (about 99.2 % on MNIST after a few epochs) whose soft labels guide the student."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, n_classes))

    def forward(self, images):
        """(N, 28, 28) uint8 tensor -> logits."""
        return self.head(self.features(images.unsqueeze(1).float() / 255.0))


def train_teacher(config, images, labels, n_classes: int, path: Path):
    """Train the distillation teacher once per run folder (cached in `path`); `config` is a `TrainConfig`."""
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
            x = torch.from_numpy(shifted(images[batch], config.max_shift, rng))
            loss = nn.functional.cross_entropy(teacher(x), torch.from_numpy(labels[batch]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with atomic_write(path) as f:
        torch.save(teacher.state_dict(), f)
    return teacher.eval()
