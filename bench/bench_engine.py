"""The network engine against PyTorch CPU on the same shapes, in the same run.

Workloads (issue: model engine):
- one training epoch (Adam, batch 32, summed cross-entropy / N) on the digits MLP 64-128-10;
- one full-batch backward of C output vectors per example (the per-layer inputs a and
  output-gradients g that K-FAC and the GGN need) on the digits MLP;
- the same two on a CNN for N = 2000 images of 1×28×28: Conv(1→8, 3, pad 1) → ReLU → AvgPool 2 →
  Conv(8→16, 3, pad 1) → ReLU → AvgPool 2 → Flatten → Linear(784, 10), on seeded random images.

PyTorch gets the same number of threads as OpenBLAS. Its backward of C vectors uses
`torch.autograd.grad(..., is_grads_batched=True)` on the layer outputs captured by hooks, the
vectorised way to get all g at once. Prints median seconds over interleaved rounds (see
`_common.interleaved_runs`) and the ratio torch / bdlcore (> 1: bdlcore is faster). Needs torch; prints a note and exits 0 without it.
"""
import sys

import numpy as np

import bdlcore
from _common import interleaved_runs

# Rounds per workload: the MLP's calls take milliseconds, so more rounds steady its medians.
REPEATS = {"mlp": 15, "cnn": 3}


def mlp_layers(lib):
    return [lib.Linear(64, 128), lib.ReLU(), lib.Linear(128, 10)]


def cnn_layers(lib):
    return [lib.Conv2d(1, 8, 3, padding=1), lib.ReLU(), lib.AvgPool2d(2), lib.Conv2d(8, 16, 3, padding=1),
            lib.ReLU(), lib.AvgPool2d(2), lib.Flatten(), lib.Linear(16 * 7 * 7, 10)]


def torch_model(torch, kind):
    nn = torch.nn
    if kind == "mlp":
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                         nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


def torch_epoch(torch, module, X, y, batch_size=32, seed=0):
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(X.shape[0], generator=generator)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="mean")
    for start in range(0, X.shape[0], batch_size):
        index = order[start:start + batch_size]
        optimizer.zero_grad()
        loss_fn(module(X[index]), y[index]).backward()
        optimizer.step()


def torch_backward_vectors(torch, module, X, V):
    """a and g of every Linear/Conv2d layer for K vectors per example (V: (N, K, C))."""
    inputs, outputs = [], []

    def capture(module, args, output):  # returns None: the output is left as it is
        inputs.append(args[0])
        outputs.append(output)

    hooks = [m.register_forward_hook(capture) for m in module if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    f = module(X)
    grads = torch.autograd.grad(f, outputs, grad_outputs=V.transpose(0, 1).contiguous(), is_grads_batched=True)
    for h in hooks:
        h.remove()
    return inputs, grads


def main():
    try:
        import torch
    except ImportError:
        print("bench_engine: PyTorch is not importable here; run with a Python that has torch "
              "(e.g. the fixtures virtualenv) to compare.")
        return 0
    threads = bdlcore.blas_info().num_threads
    torch.set_num_threads(threads)
    torch.set_default_dtype(torch.float64)
    print(f"threads: {threads} (OpenBLAS core {bdlcore.blas_info().core}; torch {torch.__version__})")
    rng = np.random.default_rng(0)
    X_train, y_train, _, _ = bdlcore.datasets.load_digits()
    workloads = {
        "mlp": (X_train / 16.0, y_train.astype(np.int64), (64,)),
        "cnn": (rng.standard_normal((2000, 1, 28, 28)), rng.integers(0, 10, 2000), (1, 28, 28)),
    }
    print(f"{'workload':<36} {'torch s':>9} {'bdlcore s':>10} {'ratio':>6}")
    for kind, (X, y, shape) in workloads.items():
        layers = mlp_layers(bdlcore) if kind == "mlp" else cnn_layers(bdlcore)
        ours = bdlcore.Sequential(layers, input_shape=shape, seed=0)
        theirs = torch_model(torch, kind)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        C = 10
        V = np.broadcast_to(np.eye(C), (X.shape[0], C, C)).copy()
        Vt = torch.from_numpy(V)

        (t_torch, _, _), (t_ours, _, _) = interleaved_runs(
            [lambda: torch_epoch(torch, theirs, Xt, yt),
             lambda: ours.fit(X, y, epochs=1, batch_size=32, lr=1e-3, progress=False)], REPEATS[kind])
        print(f"{kind + ': one Adam epoch (N=' + str(X.shape[0]) + ')':<36} {t_torch:>9.4f} {t_ours:>10.4f} {t_torch / t_ours:>6.2f}")
        (t_torch, _, _), (t_ours, _, _) = interleaved_runs(
            [lambda: torch_backward_vectors(torch, theirs, Xt, Vt), lambda: ours.backward_vectors(X, V)], REPEATS[kind])
        print(f"{kind + ': backward of C vectors (a, g)':<36} {t_torch:>9.4f} {t_ours:>10.4f} {t_torch / t_ours:>6.2f}")
        ours.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
