"""``sparsentk kernel``: the bias-generalized NTK of a data set, its spectrum, and λ_min / κ against the bias."""

from __future__ import annotations

import sys

import click

from sparsentk.cli._common import (
    NONNEG,
    SEED,
    NumberList,
    data_options,
    echo_done,
    fresh_outputs,
    load_data,
    output_dir,
)

FILES = ["kernel.npy", "spectrum.npy", "spectrum.csv", "summary.json", "spectrum.png", "lambda_min.png"]


@click.command("kernel")
@data_options(n=500, dim=16)
@click.option("--bias", type=NONNEG, default=2.0, show_default=True,
              help="Bias B of the kernel written to kernel.npy and of the plotted spectrum.")
@click.option("--biases", type=NumberList(minimum=0.0), default="0,0.5,1,1.5,2,2.5,3", show_default=True,
              help="Comma-separated biases for the λ_min / condition-number sweep.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the sphere data.")
@click.option("--out", type=click.Path(), default="runs/kernel", show_default=True, help="Output folder.")
def kernel_command(data, n, dim, teacher, noise, bias, biases, seed, out):
    """Compute H∞ (P1's bias-generalized NTK) on the data and plot its spectrum and λ_min against B.

    Writes kernel.npy, spectrum.npy/csv, summary.json, spectrum.png (the eigenvalues of H∞ at --bias) and
    lambda_min.png (λ_min and condition number against the bias, with λ₀e^{−B²/2} fitted).
    """
    import numpy as np

    import sparsentk as snt
    from sparsentk import plotting
    from sparsentk._io import atomic_save_npy, atomic_write_json, atomic_write_text, machine_info
    from sparsentk._memory import require_memory

    out_dir = output_dir(out)
    require_memory(24.0 * (n if data == "sphere" else 0) ** 2, "--n", f"the {n} × {n} kernel and its spectrum")
    X, _ = load_data(data, n, dim, teacher, noise, seed)
    require_memory(24.0 * X.shape[0] ** 2, "--data", f"the {X.shape[0]} × {X.shape[0]} kernel and its spectrum")
    K = snt.bias_ntk(X, bias)
    spectrum = np.linalg.eigvalsh(K)
    lam, kappa = [], []
    with click.progressbar(biases, label="kernel spectrum vs bias", file=sys.stderr) as bar:
        for b in bar:
            w = np.linalg.eigvalsh(snt.bias_ntk(X, b))
            lam.append(float(w[0]))
            kappa.append(float(w[-1] / w[0]) if w[0] > 0 else float("inf"))
    positive = np.array(lam) > 0
    lam0 = snt.theory.fit_lambda0(np.array(biases)[positive], np.array(lam)[positive]) if positive.any() else None
    nx, d = int(X.shape[0]), int(X.shape[1])
    summary = {"config": {"data": data, "n": nx, "dim": d, "bias": bias, "seed": seed},
               "lambda_min": float(spectrum[0]), "lambda_max": float(spectrum[-1]),
               "condition_number": float(spectrum[-1] / spectrum[0]) if spectrum[0] > 0 else None,
               "sweep": {"biases": biases, "lambda_min": lam, "condition_number": kappa, "lambda0_fit": lam0},
               "machine": machine_info()}
    with fresh_outputs(out_dir, FILES) as stage:
        atomic_save_npy(stage / "kernel.npy", K)
        atomic_save_npy(stage / "spectrum.npy", spectrum)
        atomic_write_text(stage / "spectrum.csv", "index,eigenvalue\n" + "".join(
            f"{i},{v!r}\n" for i, v in enumerate(spectrum.tolist())))
        atomic_write_json(stage / "summary.json", summary)
        plotting.save(plotting.kernel_spectrum(spectrum, bias=bias, n=nx, dim=d), stage / "spectrum.png")
        plotting.save(plotting.spectrum_vs_bias(biases, lam, kappa, lam0, title=f"H∞ on {data}: n = {nx}, d = {d}"),
                      stage / "lambda_min.png")
    echo_done(out_dir, FILES)
    click.echo(f"λ_min(H∞) at B={bias:g}: {spectrum[0]:.4g}; fitted λ₀ = {lam0 if lam0 is None else f'{lam0:.4g}'}")
