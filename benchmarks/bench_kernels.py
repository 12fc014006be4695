"""Kernel benchmarks (issue 3): bias_ntk against the Gram matrix, empirical_ntk against torch.func.

``python benchmarks/run.py kernels [-- --quick]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.special import ndtr, owens_t

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sparsentk as snt
from _common import header, median_time, table, unit_data


def torch_func_ntk(net: snt.ShallowReLU, X: np.ndarray) -> np.ndarray:
    """The PyTorch tutorial's NTK: vmap(jacrev) Jacobians of (W, b), contracted (float64)."""
    import torch
    from torch.func import functional_call, jacrev, vmap

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.W = torch.nn.Parameter(torch.from_numpy(net.W.astype(np.float64)))
            self.b = torch.nn.Parameter(torch.from_numpy(net.b.astype(np.float64)))
            self.register_buffer("a", torch.from_numpy(net.a.astype(np.float64)))

        def forward(self, x):
            return torch.relu(x @ self.W.T - self.b) @ self.a / net.width**0.5

    model = Net()
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.from_numpy(X.astype(np.float64))

    def single(p, xi):
        return functional_call(model, p, (xi.unsqueeze(0),)).squeeze(0)

    jac = vmap(jacrev(single), (None, 0))(params, x)
    jac = [j.flatten(1) for j in jac.values()]
    return sum(j @ j.T for j in jac).numpy()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args(argv)
    n, d = (1000, 784) if args.quick else (4000, 784)
    header("bias_ntk against the float64 Gram matrix (unit rows, bias 2)")
    X, _ = unit_data(n, d)
    gram = median_time(lambda: X @ X.T)
    ntk = median_time(lambda: snt.bias_ntk(X, 2.0))
    sub = np.random.default_rng(1).uniform(-0.5, 0.5, 200_000)
    owen = median_time(lambda: ndtr(-2.0) - 2 * owens_t(2.0, np.sqrt((1 - sub) / (1 + sub))), repeats=3)
    owen_full = owen * n * n / len(sub) + gram
    table(["n", "d", "Gram X·Xᵀ (s)", "bias_ntk (s)", "bias_ntk / Gram", "Owen's T per entry, extrapolated (s)",
           "Owen / Gram"], [[n, d, gram, ntk, ntk / gram, owen_full, owen_full / gram]])
    print("Owen's T was timed on 200 000 entries and scaled to n² entries, plus the Gram matrix.\n")

    header("empirical_ntk against the torch.func Jacobian-contraction NTK (float64)")
    n, width, d = (256, 2048, 64) if args.quick else (512, 4096, 128)
    X, _ = unit_data(n, d, seed=2)
    rows = []
    for bias in (0.0, 2.0):
        net = snt.ShallowReLU(d, width, bias, seed=0)
        ours = median_time(lambda net=net: snt.empirical_ntk(net, X), repeats=3)
        ref = torch_func_ntk(net, X)
        theirs = median_time(lambda net=net: torch_func_ntk(net, X), repeats=1, warmup=0)
        err = float(np.abs(snt.empirical_ntk(net, X) - ref).max())
        rows.append([n, width, d, bias, ours, theirs, theirs / ours, err])
    table(["n", "width", "d", "bias", "empirical_ntk (s)", "torch.func (s)", "speed-up", "max |difference|"], rows)


if __name__ == "__main__":
    main()
