"""The torch runtime's own paths: int8 products, packed uploads, tensors in place, devices, no torch.

Its exactness over MNIST, batch sizes and random geometries is in the shared suite
(test_runtimes.py), where ("torch", "cpu") and, with a GPU, ("torch", "cuda") are runtimes like the others.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import IN_CI, literal_forward, random_params

torch = pytest.importorskip("torch") if not IN_CI else __import__("torch")

import bnn  # noqa: E402
from bnn.errors import ImageError, MissingExtraError, UnknownNameError  # noqa: E402
from bnn.runtimes import make_runtime  # noqa: E402
from bnn.runtimes import torch as torch_runtime  # noqa: E402
from bnn.runtimes.reference import ReferenceRuntime  # noqa: E402
from bnn.runtimes.torch import TorchRuntime, pack_images  # noqa: E402

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here (torch.cuda.is_available() is False)")


@pytest.mark.parametrize("network", ["lfcW1A1", "lfcW1A2"])
@pytest.mark.parametrize(
    ("hidden", "n_classes", "mw0"),
    [((64, 64, 64), 10, 832), ((256, 256, 256), 10, 784), ((20, 36, 12), 3, 790), ((1024, 1024, 1024), 10, 832)],
)
@pytest.mark.parametrize("n", [0, 1, 17, 40])
def test_int8_products_are_exact(network, hidden, n_classes, mw0, n):
    # The CUDA path (torch._int_mm, shapes padded to multiples of 8, small batches in float32) run on the CPU.
    rng = np.random.default_rng(n + mw0)
    params = random_params(rng, network, hidden, n_classes, mw0)
    images = rng.integers(0, 256, (n, 784), dtype=np.uint8)
    out = TorchRuntime(params, device="cpu", matmul="int8").run(images)
    scores, bits = literal_forward(params, images)
    np.testing.assert_array_equal(out.scores, scores)
    np.testing.assert_array_equal(out.bits, bits)
    np.testing.assert_array_equal(out.classes, bnn.bits.decide(scores, bits, params.decision))


def test_packed_upload_gives_the_same_outputs(original, mnist_test):
    images = mnist_test[0][:300].reshape(-1, 784)
    plain = TorchRuntime(original, device="cpu", packed=False).run(images)
    packed = TorchRuntime(original, device="cpu", packed=True).run(images)
    assert pack_images(images).shape == (300, 98)
    for a, b in zip(plain, packed):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(plain.scores, ReferenceRuntime(original).run(images).scores)


def test_tensors_in_and_out(original, mnist_test):
    images = mnist_test[0][:70]
    clf = bnn.Classifier(original.network, original, "torch", device="cpu")
    tensor = torch.from_numpy(images.copy())
    out = clf.infer(tensor, as_tensors=True)
    assert isinstance(out.classes, torch.Tensor) and out.classes.dtype == torch.int32
    assert out.scores.device == tensor.device and out.bits.dtype == torch.bool
    np.testing.assert_array_equal(out.classes.numpy(), clf.predict(images))
    np.testing.assert_array_equal(clf.predict(tensor), clf.predict(images))  # numpy out by default
    # Any runtime accepts a tensor (via the host); only the torch runtime returns tensors.
    native = bnn.Classifier(original.network, original, "reference")
    np.testing.assert_array_equal(native.predict(tensor), clf.predict(images))
    with pytest.raises(UnknownNameError, match="as_tensors=True needs runtime='torch'"):
        native.predict(tensor, as_tensors=True)
    with pytest.raises(ImageError, match="expected uint8 pixels"):
        clf.predict(tensor.float())
    with pytest.raises(ImageError, match=r"expected shape \(N, 28, 28\) or \(N, 784\)"):
        clf.predict(tensor[:, :27])


def test_device_names_and_errors(original):
    clf = bnn.Classifier(original.network, original, "torch", device="cpu")
    assert clf.runtime == "torch" and clf.kernel == "cpu/fp32" and "runtime=torch kernel=cpu/fp32" in repr(clf)
    with pytest.raises(UnknownNameError, match="torch device 'nonsense' is not available"):
        make_runtime(original, "torch", device="nonsense")
    with pytest.raises(UnknownNameError, match="device='cpu' applies to the torch runtime, not 'native'"):
        make_runtime(original, "native", device="cpu")
    assert bnn.LfcClassifier(original.network, original, bnn.RUNTIME_TORCH).runtime == "torch"


def test_without_torch_the_error_says_what_to_install(original, monkeypatch):
    monkeypatch.setattr(torch_runtime, "torch", None)
    with pytest.raises(MissingExtraError, match="the torch runtime needs PyTorch: pip install torch"):
        bnn.Classifier(original.network, original, "torch")


@CUDA
def test_cuda_tensors_stay_on_the_gpu(original, mnist_test):
    images = torch.from_numpy(mnist_test[0].copy()).cuda()
    clf = bnn.Classifier(original.network, original, "torch", device="cuda")
    assert clf.kernel.endswith("/int8")
    out = clf.infer(images, as_tensors=True)
    assert out.classes.is_cuda
    np.testing.assert_array_equal(
        out.scores.cpu().numpy(), ReferenceRuntime(original).run(mnist_test[0].reshape(-1, 784)).scores
    )


def _strict_int_mm(a, b):
    """torch._int_mm as cuBLAS takes it on CUDA: int8, more than 16 rows, K and N multiples of 8,
    A row-major, B column-major (the case PyTorch's tests skip: pytorch#169956)."""
    assert a.dtype == b.dtype == torch.int8 and a.dim() == b.dim() == 2
    assert a.shape[0] > 16, f"{a.shape[0]} rows"
    assert a.shape[1] % 8 == 0 and b.shape[1] % 8 == 0 and a.shape[1] == b.shape[0], (a.shape, b.shape)
    assert a.is_contiguous(), "A must be row-major"
    assert b.t().is_contiguous() and not b.is_contiguous(), "B must be column-major"
    return (a.to(torch.int32) @ b.to(torch.int32)).to(torch.int32)


@pytest.mark.parametrize("n", [*range(32), 555])
def test_int8_products_follow_the_cuda_rules(monkeypatch, n):
    monkeypatch.setattr(torch, "_int_mm", _strict_int_mm)
    rng = np.random.default_rng(n)
    params = random_params(rng, ("lfcW1A1", "lfcW1A2")[n % 2], (48, 20, 36), 10, 790)
    runtime = TorchRuntime(params, device="cpu", matmul="int8")
    runtime.chunk = 100  # 555 images: five whole chunks and a short last one of 55
    images = rng.integers(0, 256, (n, 784), dtype=np.uint8)
    out = runtime.run(images)
    ref = ReferenceRuntime(params).run(images)
    np.testing.assert_array_equal(out.scores, ref.scores)
    np.testing.assert_array_equal(out.bits, ref.bits)
    assert runtime.kernel == "cpu/int8"  # no fallback happened


def test_an_int8_gemm_that_fails_or_differs_falls_back_with_a_warning(monkeypatch):
    params = random_params(np.random.default_rng(9), "lfcW1A1", (48, 20, 36), 10, 790)
    images = np.random.default_rng(10).integers(0, 256, (40, 784), dtype=np.uint8)
    ref = ReferenceRuntime(params).run(images)

    def unsupported(a, b):
        raise RuntimeError("CUBLAS_STATUS_NOT_SUPPORTED")

    for fake, why in ((unsupported, "torch._int_mm failed"), (lambda a, b: _strict_int_mm(a, b) + 1, "differs")):
        monkeypatch.setattr(torch, "_int_mm", fake)
        runtime = TorchRuntime(params, device="cpu", matmul="int8")
        with pytest.warns(RuntimeWarning, match=f"{why}.*using float32 products"):
            out = runtime.run(images)
        np.testing.assert_array_equal(out.scores, ref.scores)
        assert runtime.kernel == "cpu/fp32"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the script's report where there is no GPU")
def test_gpu_check_script_reports_one_line_from_a_plain_copy(tmp_path):
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    # As on a GPU host: no CI variable (the plain copy has no built extension, which CI would demand).
    dropped = ("PYTHONPATH", "CI", "BNN_REQUIRE_NATIVE")
    # The AVX-512 benchmark steps (a CPU with it) take minutes and say nothing about the report.
    env = {k: v for k, v in os.environ.items() if k not in dropped} | {
        "OUT": str(tmp_path),
        "PYTHON": sys.executable,
        "AVX512_BENCH": "0",
    }
    proc = subprocess.run(["bash", str(root / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True, env=env)
    last = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 1 and last == "FAIL: 2 of 3 steps failed"  # no CUDA: exactness and benchmark fail
    assert "FAIL: no CUDA device" in (tmp_path / "exactness.log").read_text()
    assert "exactness: FAILED" in (tmp_path / "summary.log").read_text()
