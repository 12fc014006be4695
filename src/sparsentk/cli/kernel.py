"""``sparsentk kernel``: the bias-generalized NTK of a data set, its spectrum, and λ_min / κ against the bias."""

from __future__ import annotations

import click
import numpy as np

import sparsentk as snt
from sparsentk import plotting
from sparsentk._io import atomic_save_npy, atomic_write_json, atomic_write_text, machine_info
from sparsentk.cli._common import data_options, echo_done, load_data, number_list, output_dir


@click.command("kernel")
@data_options(n=500, dim=16)
@click.option("--bias", type=float, default=2.0, show_default=True, help="Bias of the kernel written to kernel.npy.")
@click.option("--biases", default="0,0.5,1,1.5,2,2.5,3", show_default=True,
              help="Comma-separated biases for the λ_min / condition-number sweep.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="runs/kernel", show_default=True)
def kernel_command(data, n, dim, teacher, noise, bias, biases, seed, out):
    """Compute H∞ (P1's bias-generalized NTK) on the data; write kernel.npy, spectrum.npy/csv, summary.json and
    lambda_min.png (λ_min and condition number against the bias, with λ₀e^{−B²/2} fitted)."""
    X, _ = load_data(data, n, dim, teacher, noise, seed)
    sweep = number_list(biases, "--biases")
    out_dir = output_dir(out)
    K = snt.bias_ntk(X, bias)
    spectrum = np.linalg.eigvalsh(K)
    atomic_save_npy(out_dir / "kernel.npy", K)
    atomic_save_npy(out_dir / "spectrum.npy", spectrum)
    atomic_write_text(out_dir / "spectrum.csv", "index,eigenvalue\n" + "".join(
        f"{i},{v!r}\n" for i, v in enumerate(spectrum.tolist())))
    lam, kappa = [], []
    with click.progressbar(sweep, label="kernel spectrum vs bias") as bar:
        for b in bar:
            w = np.linalg.eigvalsh(snt.bias_ntk(X, b))
            lam.append(float(w[0]))
            kappa.append(float(w[-1] / w[0]) if w[0] > 0 else float("inf"))
    positive = np.array(lam) > 0
    lam0 = snt.theory.fit_lambda0(np.array(sweep)[positive], np.array(lam)[positive]) if positive.any() else None
    summary = {"config": {"data": data, "n": int(X.shape[0]), "dim": int(X.shape[1]), "bias": bias, "seed": seed},
               "lambda_min": float(spectrum[0]), "lambda_max": float(spectrum[-1]),
               "condition_number": float(spectrum[-1] / spectrum[0]) if spectrum[0] > 0 else None,
               "sweep": {"biases": sweep, "lambda_min": lam, "condition_number": kappa, "lambda0_fit": lam0},
               "machine": machine_info()}
    atomic_write_json(out_dir / "summary.json", summary)
    plotting.save(plotting.spectrum_vs_bias(sweep, lam, kappa, lam0), out_dir / "lambda_min.png")
    echo_done(out_dir, ["kernel.npy", "spectrum.npy", "spectrum.csv", "summary.json", "lambda_min.png"])
    click.echo(f"λ_min(H∞) at B={bias:g}: {spectrum[0]:.4g}; fitted λ₀ = {lam0 if lam0 is None else f'{lam0:.4g}'}")
