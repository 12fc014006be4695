"""P2's Lemma 3.1 written out in plain Python: the test oracle shared by the angle, deep-kernel and conditioning
tests (independent of sparsentk's own implementation)."""

from __future__ import annotations

import math


def lemma31_cos(theta: float, depth: int) -> float:
    """P2 Lemma 3.1 (B = 0), as printed: cos φ = (1/(L+1)) Σ_l cos θ_l Π_{k=l}^{L-1} (1 − θ_k/π), with
    θ_0 = θ and θ_{l+1} = arccos(((π − θ_l)/π) cos θ_l + sin θ_l / π)."""
    thetas = [theta]
    for _ in range(depth):
        t = thetas[-1]
        thetas.append(math.acos(min(1.0, ((math.pi - t) / math.pi) * math.cos(t) + math.sin(t) / math.pi)))
    total = 0.0
    for level in range(depth + 1):
        prod = 1.0
        for k in range(level, depth):
            prod *= 1.0 - thetas[k] / math.pi
        total += math.cos(thetas[level]) * prod
    return total / (depth + 1)


def lemma31_phi(theta: float, depth: int) -> float:
    """The gradient angle φ (radians) of Lemma 3.1."""
    return math.acos(max(-1.0, min(1.0, lemma31_cos(theta, depth))))
