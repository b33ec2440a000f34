"""Generate the reference fixtures for the bdlcore network engine.

Writes one ``.npz`` file per small model into ``Tests/Fixtures/engine/`` (plus a
README.md describing them). The fixtures hold outputs, losses, gradients, full
Jacobians, Jacobian-transpose-vector products, per-layer K-FAC inputs ``a`` and
output gradients ``g``, and the exact GGN, all computed by PyTorch in float64.
The Swift tests read these files; CI never needs PyTorch.

Requirements: PyTorch and numpy. This script needs ``torch``; install it in a
separate virtualenv (the pattern ``.venv*/`` is gitignored). From the repository
root::

    python3 -m venv .venv-fixtures
    .venv-fixtures/bin/pip install torch numpy
    .venv-fixtures/bin/python scripts/generate_engine_fixtures.py

The output is deterministic: every random draw comes from a seeded
``torch.Generator`` per model, all tensors are float64
(``torch.set_default_dtype(torch.float64)``), torch runs single-threaded, and
the ``.npz`` archives are written with fixed timestamps and no compression, so
re-running with the same torch version reproduces the files byte for byte
(up to rounding differences between torch builds).

The layer specs, seeding, parameter and data draws and the ``.npz`` writer are shared
with ``generate_kfac_fixtures.py`` through ``fixture_common.py`` in this folder.

File format: each ``.npz`` is an uncompressed (stored) ZIP archive of ``.npy``
version 1.0 entries, little-endian, C order. Strings (``spec``, ``likelihood``,
``torch_version``) are 0-d numpy unicode arrays (dtype ``<U…``, UTF-32LE).

Conventions (see DESIGN.md §4):
- parameters are ``torch.nn.utils.parameters_to_vector(model.parameters())``:
  layer by layer, weight then bias, each flattened row-major in PyTorch's shape;
- classification: loss = CrossEntropyLoss(reduction='sum'), Λ = diag(p) − p pᵀ
  with p = softmax(f);
- regression: Gaussian NLL at σ = 1 without its constant term,
  loss = 0.5 · Σ (f − y)², Λ = I;
- GGN = Σ_n J_nᵀ Λ_n J_n (a sum over the data).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fixture_common.py, run as a script

from fixture_common import (  # noqa: E402
    REPO_ROOT, GlobalAvgPool2d, MeanOverSequence, assert_close, base_arrays, configure_torch,
    draw_data, full_jacobian, im2col, loss_fn, readme_file_section, seeded_model, write_fixture)

OUT_DIR_REL = "Tests/Fixtures/engine"
OUT_DIR = REPO_ROOT / OUT_DIR_REL

K = 3  # number of output vectors per example in V

# Tolerance of the self-consistency asserts: all quantities are float64 and the
# models are tiny, so independent computations agree to a few ulps of O(1) values.
RTOL = 1e-11
ATOL = 1e-11


def build_models() -> list[dict]:
    """Model definitions: name, seed, module, per-example input shape, likelihood, C."""
    return [
        dict(name="mlp", seed=1001, likelihood="classification", n=7, input_shape=(8,),
             model=lambda: nn.Sequential(
                 nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 12), nn.Tanh(),
                 nn.Linear(12, 5))),
        dict(name="mlp_regression", seed=1002, likelihood="regression", n=6, input_shape=(6,),
             model=lambda: nn.Sequential(
                 nn.Linear(6, 10), nn.Sigmoid(), nn.Linear(10, 10),
                 nn.GELU(approximate="none"), nn.Linear(10, 3))),
        # input 2x10x10 -> conv1 10x10 -> pool 5x5 -> conv2 (5-3)/2+1 = 2 -> 3x2x2 -> Linear(12, 4)
        dict(name="cnn", seed=1003, likelihood="classification", n=5, input_shape=(2, 10, 10),
             model=lambda: nn.Sequential(
                 nn.Conv2d(2, 4, kernel_size=3, stride=1, padding=1), nn.ReLU(),
                 nn.AvgPool2d(2),
                 nn.Conv2d(4, 3, kernel_size=3, stride=2, padding=0, bias=True), nn.Tanh(),
                 nn.Flatten(), nn.Linear(12, 4))),
        # input 1x6x7 -> conv1 (k2) 5x6 -> conv2 (k3, p1) 5x6 -> global mean -> 5 -> Linear(5, 3)
        dict(name="cnn_global", seed=1004, likelihood="classification", n=4,
             input_shape=(1, 6, 7),
             model=lambda: nn.Sequential(
                 nn.Conv2d(1, 3, kernel_size=2, stride=1, padding=0, bias=False), nn.ReLU(),
                 nn.Conv2d(3, 5, kernel_size=3, stride=1, padding=1), GlobalAvgPool2d(),
                 nn.Linear(5, 3))),
        # input (T=3, D=4); the first two Linear layers are shared over T
        dict(name="sequence", seed=1005, likelihood="classification", n=5, input_shape=(3, 4),
             model=lambda: nn.Sequential(
                 nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), MeanOverSequence(),
                 nn.Linear(6, 3))),
    ]


def close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    assert_close(a, b, what, rtol=RTOL, atol=ATOL)


def generate(defn: dict) -> dict[str, np.ndarray]:
    name, likelihood, n = defn["name"], defn["likelihood"], defn["n"]
    # Generic parameter values: randn * 0.5, in parameter-vector order; then X, y, V.
    gen, model, spec, theta = seeded_model(defn)
    P = theta.numel()
    X, outputs, y = draw_data(defn, model, gen)
    C = outputs.shape[-1]
    V = torch.randn((n, K, C), generator=gen)

    # Outputs (again, now with autograd), loss, gradient.
    outputs = model(X)
    assert outputs.shape == (n, C)
    loss = loss_fn(outputs, y, likelihood)
    gradient = torch.cat([g.reshape(-1) for g in
                          torch.autograd.grad(loss, list(model.parameters()))])
    outputs, loss = outputs.detach(), loss.detach()

    # Full Jacobian (N, C, P) with respect to the flat parameter vector.
    jacobian = full_jacobian(model, X, theta)
    assert jacobian.shape == (n, C, P)

    # Residual Λ-free check: gradient = Σ_n J_nᵀ r_n with r = p - onehot(y) or f - y.
    if likelihood == "classification":
        probs = torch.softmax(outputs, dim=-1)
        resid = probs - F.one_hot(y, C).to(outputs.dtype)
        lam = torch.diag_embed(probs) - probs[:, :, None] * probs[:, None, :]
    else:
        resid = outputs - y
        lam = torch.eye(C).expand(n, C, C)
    close(torch.einsum("ncp,nc->p", jacobian, resid), gradient, f"{name}: gradient vs Jᵀr")

    vjp = torch.einsum("ncp,nkc->nkp", jacobian, V)
    ggn = torch.einsum("ncp,ncd,ndq->pq", jacobian, lam, jacobian)
    ggn = 0.5 * (ggn + ggn.T)

    # Per-layer inputs a and output gradients g of <f(x_n), V[n,k]>, by a manual
    # forward pass through the Sequential keeping each parametric layer's in/out.
    layer_in, layer_out = {}, {}
    h = X
    for idx, m in enumerate(model):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            layer_in[idx] = h.detach()
            h = m(h)
            layer_out[idx] = h
        else:
            h = m(h)
    close(h.detach(), outputs, f"{name}: manual forward vs model(X)")
    idxs = sorted(layer_out)
    grads_per_k = [torch.autograd.grad((h * V[:, k]).sum(), [layer_out[i] for i in idxs],
                                       retain_graph=True) for k in range(K)]

    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for j, idx in enumerate(idxs):
        m = model[idx]
        x_in, out = layer_in[idx], layer_out[idx].detach()
        g_k = [grads_per_k[k][j].detach() for k in range(K)]
        if isinstance(m, nn.Linear):
            if x_in.dim() == 2:  # (N, in): one position
                a = x_in[:, None, :]
                g = torch.stack([gk[:, None, :] for gk in g_k], dim=1)
            else:  # (N, T, in): T positions, weight shared
                assert x_in.dim() == 3
                a = x_in
                g = torch.stack(g_k, dim=1)
            W2 = m.weight.detach()
        else:
            a = im2col(m, x_in)
            nb, co, ho, wo = out.shape
            g = torch.stack([gk.reshape(nb, co, ho * wo).transpose(1, 2) for gk in g_k], dim=1)
            W2 = m.weight.detach().reshape(m.out_channels, -1)
            # The patch matrix reproduces the convolution: out_r = W a_r + b.
            lin = a @ W2.T + (m.bias.detach() if m.bias is not None else 0.0)
            close(lin, out.reshape(nb, co, ho * wo).transpose(1, 2),
                  f"{name}: im2col of layer {idx}")
        N_, R, din = a.shape
        dout = W2.shape[0]
        assert g.shape == (n, K, R, dout) and N_ == n and din == W2.shape[1]

        # Self-consistency: Σ_r g_r a_rᵀ (and Σ_r g_r) equal the vjp slices.
        wgrad = torch.einsum("nkro,nri->nkoi", g, a).reshape(n, K, dout * din)
        close(wgrad, vjp[:, :, offset:offset + dout * din], f"{name}: weight vjp of layer {idx}")
        offset += dout * din
        if m.bias is not None:
            close(g.sum(dim=2), vjp[:, :, offset:offset + dout], f"{name}: bias vjp of layer {idx}")
            offset += dout
        arrays[f"a_{idx}"] = a.numpy().copy()
        arrays[f"g_{idx}"] = g.numpy().copy()
    assert offset == P, f"{name}: parametric layers cover {offset} of {P} parameters"

    base = base_arrays(defn, spec, theta, X, y, outputs)
    base.update({
        "loss": np.array(loss.item(), dtype=np.float64),
        "gradient": gradient.detach().numpy().copy(),
        "jacobian": jacobian.detach().numpy().copy(),
        "V": V.numpy().copy(),
        "vjp": vjp.detach().numpy().copy(),
        "ggn": ggn.detach().numpy().copy(),
    })
    base.update(arrays)
    return base


def write_readme(results: dict[str, dict[str, np.ndarray]], sizes: dict[str, int]) -> None:
    lines = [
        "# Engine reference fixtures",
        "",
        "Reference values for the network engine (parameters, outputs, losses, gradients,",
        "Jacobians, Jacobian-transpose products, per-layer K-FAC inputs and output gradients,",
        "exact GGN), computed in float64 by PyTorch so that the Swift tests need no PyTorch.",
        "",
        f"Made by `scripts/generate_engine_fixtures.py` with torch {torch.__version__}",
        "(also stored in each file as `torch_version`). Do not edit by hand. To regenerate,",
        "from the repository root:",
        "",
        "```sh",
        "python3 -m venv .venv-fixtures",
        ".venv-fixtures/bin/pip install torch numpy",
        ".venv-fixtures/bin/python scripts/generate_engine_fixtures.py",
        "```",
        "",
        "The script is deterministic (seeded generators, float64, one thread, fixed ZIP",
        "timestamps) and asserts that its quantities agree with each other before writing.",
        "",
        "## Format",
        "",
        "Each `.npz` is an uncompressed (stored) ZIP archive of `.npy` version 1.0 entries,",
        "little-endian, C order. `spec`, `likelihood` and `torch_version` are 0-d numpy unicode",
        "arrays (dtype `<U…`, UTF-32LE).",
        "",
        "## Keys (all files)",
        "",
        "- `spec`: JSON list of layer dicts in `nn.Sequential` order. Types and keys:",
        "  `Linear` (`in_features`, `out_features`, `bias`), `Conv2d` (`in_channels`,",
        "  `out_channels`, `kernel_size`, `stride`, `padding`, `bias`; square, ints),",
        "  `ReLU`, `Tanh`, `Sigmoid`, `GELU` (exact erf form), `Identity`, `Flatten`,",
        "  `AvgPool2d` (`kernel_size`; stride = kernel_size), `GlobalAvgPool2d` (mean over H, W),",
        "  `MeanOverSequence` (mean over T: (N, T, D) → (N, D)).",
        "- `input_shape`: int64, per-example input shape (e.g. `[8]`, `[3, 4]`, `[2, 10, 10]`).",
        "- `likelihood`: `\"classification\"` or `\"regression\"`.",
        "- `torch_version`: the torch version that made the file.",
        "- `parameters` (P): `parameters_to_vector(model.parameters())` — layer by layer, weight",
        "  then bias, row-major in PyTorch's shape; drawn as `randn * 0.5` (not PyTorch's init).",
        "- `X`: inputs (N, *input_shape); images NCHW, sequences (N, T, D).",
        "- `y`: int64 labels (N,) in [0, C) for classification; float64 targets (N, C) for",
        "  regression.",
        "- `outputs` (N, C): `model(X)`.",
        "- `loss` (scalar): summed NLL. Classification: `CrossEntropyLoss(reduction='sum')`.",
        "  Regression: Gaussian NLL at σ = 1 without its constant, `0.5 * sum((f - y)**2)`.",
        "- `gradient` (P): d loss / d parameters.",
        "- `jacobian` (N, C, P): J_n = ∂f(x_n)/∂θ.",
        "- `V` (N, K=3, C): seeded random output vectors.",
        "- `vjp` (N, K, P): J_nᵀ V[n, k], the gradient of <f(x_n), V[n, k]>.",
        "- `a_<L>`, `g_<L>` for each Linear/Conv2d at position L of `spec`: layer inputs a",
        "  (N, R, in) and gradients g (N, K, R, out) of <f(x_n), V[n, k]> w.r.t. the layer's",
        "  output. Linear on (N, in): R = 1. Linear on (N, T, in): R = T. Conv2d: a is the",
        "  im2col patch matrix `unfold(x, kernel, padding, stride).transpose(1, 2)`, R = H_out·W_out",
        "  in row-major (h, w) order, patch entries ordered (c, kh, kw) like the flattened weight;",
        "  g is (N, K, R, out_channels). Σ_r g_r a_rᵀ (weight, row-major (out, in)) and Σ_r g_r",
        "  (bias) equal the layer's slices of `vjp`.",
        "- `ggn` (P, P): exact GGN Σ_n J_nᵀ Λ_n J_n, Λ = diag(p) − p pᵀ with p = softmax(outputs)",
        "  for classification, Λ = I for regression (σ = 1); symmetrised as (G + Gᵀ)/2.",
        "",
        "## Files",
        "",
    ]
    for name, arrays in results.items():
        lines += readme_file_section(name, arrays, sizes[name], f", K = {K}")
    (OUT_DIR / "README.md").write_text("\n".join(lines))


def main() -> None:
    configure_torch()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    results, sizes = {}, {}
    for defn in build_models():
        arrays = generate(defn)
        path = OUT_DIR / f"{defn['name']}.npz"
        # float64 check, write, and round trip through numpy's reader.
        size = write_fixture(path, arrays)
        results[defn["name"]], sizes[defn["name"]] = arrays, size
        print(f"{OUT_DIR_REL}/{path.name}: {sizes[defn['name']]:,} bytes, "
              f"P = {arrays['parameters'].shape[0]}")
    write_readme(results, sizes)
    print(f"{OUT_DIR_REL}/README.md written; torch {torch.__version__}")


if __name__ == "__main__":
    main()
