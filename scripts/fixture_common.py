"""Code shared by the PyTorch fixture generators in this folder.

``generate_engine_fixtures.py`` and ``generate_kfac_fixtures.py`` import this module
(each puts its own folder on ``sys.path`` first, so both run as plain scripts from the
repository root). It holds what the two fixture sets must agree on:

- the custom modules ``MeanOverSequence`` and ``GlobalAvgPool2d`` and ``layer_spec``,
  which turns a module into its bdlcore layer dictionary (the ``spec`` key);
- torch's float64 / single-thread / deterministic set-up;
- the seeded model, parameter and data draws (parameters ``randn * PARAM_SCALE``);
- the summed NLL, the full parameter Jacobian and the im2col patch matrix;
- the common leading keys of every fixture file, the deterministic uncompressed
  ``.npz`` writer (fixed ZIP timestamps) and the per-file part of the README.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, jacrev

REPO_ROOT = Path(__file__).resolve().parent.parent

PARAM_SCALE = 0.5  # parameters are randn * PARAM_SCALE (not PyTorch's default init)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamp for byte-reproducible archives


class MeanOverSequence(nn.Module):
    """Mean over the sequence axis: (N, T, D) -> (N, D)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class GlobalAvgPool2d(nn.Module):
    """Mean over H and W: (N, C, H, W) -> (N, C); AdaptiveAvgPool2d(1) then Flatten."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def _as_int(v, what: str) -> int:
    if isinstance(v, tuple):
        assert all(e == v[0] for e in v), f"non-square {what}: {v}"
        v = v[0]
    assert isinstance(v, int), f"{what} must be an int, got {v!r}"
    return v


def layer_spec(m: nn.Module) -> dict:
    """The bdlcore layer dictionary of one module (exact keys of the spec)."""
    if isinstance(m, nn.Linear):
        return {"type": "Linear", "in_features": m.in_features,
                "out_features": m.out_features, "bias": m.bias is not None}
    if isinstance(m, nn.Conv2d):
        assert _as_int(m.dilation, "dilation") == 1 and m.groups == 1
        assert isinstance(m.padding, (int, tuple)), "string padding is not supported"
        return {"type": "Conv2d", "in_channels": m.in_channels,
                "out_channels": m.out_channels,
                "kernel_size": _as_int(m.kernel_size, "kernel_size"),
                "stride": _as_int(m.stride, "stride"),
                "padding": _as_int(m.padding, "padding"),
                "bias": m.bias is not None}
    if isinstance(m, nn.ReLU):
        return {"type": "ReLU"}
    if isinstance(m, nn.Tanh):
        return {"type": "Tanh"}
    if isinstance(m, nn.Sigmoid):
        return {"type": "Sigmoid"}
    if isinstance(m, nn.GELU):
        assert m.approximate == "none", "only the exact (erf) GELU is specified"
        return {"type": "GELU"}
    if isinstance(m, nn.Identity):
        return {"type": "Identity"}
    if isinstance(m, nn.Flatten):
        assert m.start_dim == 1 and m.end_dim == -1
        return {"type": "Flatten"}
    if isinstance(m, nn.AvgPool2d):
        k = _as_int(m.kernel_size, "kernel_size")
        assert _as_int(m.stride, "stride") == k and _as_int(m.padding, "padding") == 0
        assert not m.ceil_mode
        return {"type": "AvgPool2d", "kernel_size": k}
    if isinstance(m, GlobalAvgPool2d):
        return {"type": "GlobalAvgPool2d"}
    if isinstance(m, MeanOverSequence):
        return {"type": "MeanOverSequence"}
    raise TypeError(f"no bdlcore spec for module {m!r}")


def configure_torch() -> None:
    """float64 by default, one thread, deterministic algorithms, and torch.einsum's own
    contraction order: with opt_einsum installed (curvlinops brings it) torch would pick another
    order and the stored files would change in the last bit."""
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.backends.opt_einsum.enabled = False


def assert_close(a: torch.Tensor, b: torch.Tensor, what: str, *, rtol: float,
                 atol: float) -> float:
    """Assert ``torch.allclose(a, b)`` with equal shapes; returns the max abs difference."""
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    err = (a - b).abs().max().item() if a.numel() else 0.0
    if not torch.allclose(a, b, rtol=rtol, atol=atol):
        raise AssertionError(f"{what}: max abs difference {err:.3e} "
                             f"(max |reference| {b.abs().max().item():.3e})")
    return err


def seeded_model(defn: dict) -> tuple[torch.Generator, nn.Sequential, list[dict], torch.Tensor]:
    """Build ``defn["model"]()`` with parameters drawn from a generator seeded by ``defn["seed"]``.

    Seeds torch's global RNG and a fresh ``torch.Generator`` with the model's seed, sets every
    parameter (in parameter-vector order) to ``randn * PARAM_SCALE`` from that generator and
    returns ``(generator, model, spec, theta)`` with ``theta`` the flat parameter vector. The
    generator is then used for the data draws, in a fixed order.
    """
    torch.manual_seed(defn["seed"])
    gen = torch.Generator().manual_seed(defn["seed"])
    model = defn["model"]()
    spec = [layer_spec(m) for m in model]
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * PARAM_SCALE)
    theta = nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    return gen, model, spec, theta


def draw_data(defn: dict, model: nn.Module, gen: torch.Generator):
    """Inputs X (N, *input_shape), then targets y; returns ``(X, outputs, y)``.

    ``outputs = model(X)`` is computed without autograd (it gives the output size C);
    y is int64 labels in [0, C) for classification, standard-normal (N, C) for regression.
    """
    n = defn["n"]
    X = torch.randn((n, *defn["input_shape"]), generator=gen)
    with torch.no_grad():
        outputs = model(X)
    C = outputs.shape[-1]
    if defn["likelihood"] == "classification":
        y = torch.randint(0, C, (n,), generator=gen, dtype=torch.int64)
    else:
        y = torch.randn((n, C), generator=gen)
    return X, outputs, y


def loss_fn(f: torch.Tensor, y: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Summed NLL: CrossEntropyLoss(reduction='sum'), or 0.5 · Σ (f − y)² (σ = 1)."""
    if likelihood == "classification":
        return nn.CrossEntropyLoss(reduction="sum")(f, y)
    return 0.5 * ((f - y) ** 2).sum()


def full_jacobian(model: nn.Module, X: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """J (N, C, P) of ``model(X)`` with respect to the flat parameter vector ``theta``."""
    names_shapes = [(nm, p.shape) for nm, p in model.named_parameters()]

    def f_of_theta(t: torch.Tensor) -> torch.Tensor:
        params, off = {}, 0
        for nm, shp in names_shapes:
            k = int(np.prod(shp))
            params[nm] = t[off:off + k].reshape(shp)
            off += k
        return functional_call(model, params, (X,))

    return jacrev(f_of_theta)(theta)


def im2col(m: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Patch matrix (N, H_out·W_out, in_channels·k·k) of a Conv2d input, (c, kh, kw) order."""
    return F.unfold(x, kernel_size=m.kernel_size, padding=m.padding,
                    stride=m.stride, dilation=m.dilation).transpose(1, 2)


def base_arrays(defn: dict, spec: list[dict], theta: torch.Tensor, X: torch.Tensor,
                y: torch.Tensor, outputs: torch.Tensor,
                versions: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """The leading keys of every fixture file, in file order.

    ``spec``, ``input_shape``, ``likelihood``, ``torch_version``, then the extra version
    strings in ``versions`` (key -> value), then ``parameters``, ``X``, ``y``, ``outputs``.
    """
    arrays = {
        "spec": np.array(json.dumps(spec)),
        "input_shape": np.array(defn["input_shape"], dtype=np.int64),
        "likelihood": np.array(defn["likelihood"]),
        "torch_version": np.array(torch.__version__),
    }
    for key, value in (versions or {}).items():
        arrays[key] = np.array(value)
    arrays.update({
        "parameters": theta.numpy().copy(),
        "X": X.numpy().copy(),
        "y": y.numpy().copy(),
        "outputs": outputs.numpy().copy(),
    })
    return arrays


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed .npz with fixed timestamps, so reruns give identical bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.array(arr, order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def write_fixture(path: Path, arrays: dict[str, np.ndarray]) -> int:
    """Check that every float array is float64, write it with ``write_npz``, read it
    back with numpy (same keys, dtypes and values) and return the file size in bytes."""
    for key, arr in arrays.items():
        if arr.dtype.kind == "f":
            assert arr.dtype == np.float64, f"{path.stem}/{key} is {arr.dtype}"
    write_npz(path, arrays)
    with np.load(path, allow_pickle=False) as back:
        assert list(back.keys()) == list(arrays.keys())
        for key, arr in arrays.items():
            assert back[key].dtype == arr.dtype and np.array_equal(back[key], arr)
    return path.stat().st_size


def shape_str(arr: np.ndarray) -> str:
    if arr.dtype.kind == "U":
        return "string"
    return f"{arr.dtype.name} {tuple(arr.shape)}"


def layers_str(spec: list[dict]) -> str:
    """One-line summary of a spec, e.g. ``Linear(8, 16), ReLU, AvgPool2d(2)``."""
    out = []
    for l in spec:
        if l["type"] == "Linear":
            out.append(f"Linear({l['in_features']}, {l['out_features']})")
        elif l["type"] == "Conv2d":
            out.append(f"Conv2d({l['in_channels']}, {l['out_channels']}, k={l['kernel_size']}, "
                       f"s={l['stride']}, p={l['padding']}{'' if l['bias'] else ', no bias'})")
        elif l["type"] == "AvgPool2d":
            out.append(f"AvgPool2d({l['kernel_size']})")
        else:
            out.append(l["type"])
    return ", ".join(out)


def readme_file_section(name: str, arrays: dict[str, np.ndarray], size: int,
                        extra_counts: str = "") -> list[str]:
    """README lines for one fixture file: heading, likelihood, input shape and N, C, P
    (followed by ``extra_counts``, e.g. ``", K = 3"``), layers, and a key table."""
    spec = json.loads(str(arrays["spec"]))
    N, C = arrays["outputs"].shape
    P = arrays["parameters"].shape[0]
    lines = [
        f"### `{name}.npz` ({size:,} bytes)",
        "",
        f"{str(arrays['likelihood'])}; input {arrays['input_shape'].tolist()}; "
        f"N = {N}, C = {C}, P = {P}{extra_counts}.",
        f"Layers: {layers_str(spec)}.",
        "",
        "| key | dtype and shape |",
        "| --- | --- |",
    ]
    for key, arr in arrays.items():
        lines.append(f"| `{key}` | {shape_str(arr)} |")
    lines.append("")
    return lines
