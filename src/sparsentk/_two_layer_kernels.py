r"""Compiled kernels of :mod:`sparsentk.two_layer`: branch-free activations that LLVM vectorizes, and the fused GD pass.

numba calls scalar libm for ``math.exp``/``math.erfc`` (no vector math library without an SVML-patched LLVM), so a
loop containing them runs one entry at a time. Here every transcendental is written out with selects instead of
branches, which lets LLVM turn the loops into SIMD code:

- :func:`exp_` — Cody–Waite reduction :math:`t = k\ln 2 + r`, :math:`|r| \le \ln 2/2`, the degree-13 Taylor
  polynomial of :math:`e^r` (truncation below :math:`5\cdot 10^{-18}`) and :math:`2^k` assembled from its bits (in
  two factors, so that subnormal results are rounded once);
- :func:`gelu_` — :math:`\Phi(z)` as in Cephes ``ndtr`` (S. L. Moshier's rational approximations, the coefficients
  SciPy ships): :math:`\tfrac12 + \tfrac12\,\mathrm{erf}(z/\sqrt2)` with :math:`\mathrm{erf}(x) = xT(x^2)/U(x^2)` for
  :math:`|z| < \sqrt2`, else :math:`\tfrac12 e^{-z^2/2} P(x)/Q(x)` (:math:`x = |z|/\sqrt2 < 8`; :math:`R/S` beyond)
  and its complement. Unlike Cephes, :math:`u = e^{-z^2/2}` is computed from :math:`z^2` split exactly into
  :math:`s + \epsilon` by a fused multiply–add, :math:`u = e^{-s/2}(1 - \epsilon/2)`: the tail keeps full relative
  accuracy instead of losing :math:`z^2` ulps. The same :math:`u` gives
  :math:`\varphi'(z) = \Phi(z) + z\,u/\sqrt{2\pi}`;
- :func:`softplus_` (:math:`\log(1 + e^z) - \log 2` through :math:`\mathrm{log1p}(e^{-|z|})`, an atanh series after
  reduction to :math:`[1/\sqrt2, \sqrt2]`) and :func:`tanh_` (through :math:`\mathrm{expm1}(-2|z|)`, so that
  :math:`1 - \tanh^2` keeps its relative accuracy in the tails).

Arithmetic is float64, also for float32 arrays (values rounded once when stored), except GeLU on float32 arrays:
:func:`gelu32_` is the same algorithm in float32 arithmetic (twice the SIMD lanes; within 6 float32 ulps, the
benchmark's float32 path). :math:`\varphi(\pm\infty)` and :math:`\varphi'(\pm\infty)` are the limits, NaN
propagates.

The GD kernels keep the activations neuron-major (``At``, ``Dt``: width × n) and work four neurons at a time (each
row of the inputs then serves four neurons while it is in L1): with one output, one pass per step reads a neuron's
rows of :math:`A` and :math:`D`, forms its gradient
(:math:`\nabla_{w_r} = v_r\sum_i e_i D_{ri}x_i`, :math:`\nabla_{b_r} = -v_r\sum_i e_i D_{ri}`,
:math:`\nabla_{v_r} = \sum_i e_i A_{ri}`), updates :math:`w_r, b_r, v_r`, recomputes the pre-activations
:math:`z_{ri} = w_r\cdot x_i - b_r`, φ and φ′ while the rows are in cache, and adds :math:`v_r A_{ri}` to the outputs.
Neurons are split into ``blocks(width)`` fixed blocks, each with its own partial outputs summed in block order, so the
result does not depend on the number of threads. The loops are SIMD-vectorized (checked with ``inspect_asm``: zmm
FMAs on AVX-512, no libm calls); ``error_model="numpy"`` is needed for that (Python's zero-division checks are
branches), and only the gradient sums may be reassociated (``fastmath={"reassoc"}``), never the special functions.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

GELU, SOFTPLUS, TANH, RELU = 0, 1, 2, 3
#: Partial-output blocks of the GD pass: a fixed number, so results do not depend on the thread count.
MAX_BLOCKS = 16
#: Below this many entries (n × width) the kernels run serially (thread start-up would dominate).
PARALLEL_ENTRIES = 1 << 16


@intrinsic
def _fma(typingctx, a, b, c):  # pragma: no cover - compiled
    """``a*b + c`` rounded once (``llvm.fma``; a vector instruction on any x86-64 with FMA)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        t = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t]))
        return builder.call(fn, args)

    return a(a, b, c), codegen


@intrinsic
def _bits_float(typingctx, bits):  # pragma: no cover - compiled
    """The float64 whose IEEE bits are the int64 ``bits`` (a bit cast)."""
    if not (isinstance(bits, types.Integer) and bits.bitwidth == 64):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(bits), codegen


_LOG2E = 1.4426950408889634074
_LN2 = 0.69314718055994530942
_LN2_HI = 6.93145751953125e-1  # 17 significant bits: k * _LN2_HI is exact for |k| < 2^36
_LN2_LO = 1.42860682030941723212e-6
_SQRT1_2 = 0.70710678118654752440
_SQRT2 = 1.41421356237309504880
_INV_SQRT2PI = 0.39894228040143267794
_F = [1.0 / math.factorial(k) for k in range(14)]
F2, F3, F4, F5, F6, F7, F8, F9, F10, F11, F12, F13 = _F[2:]

# Cephes ndtr.c (S. L. Moshier), as shipped by SciPy (scipy/special/xsf/cephes/ndtr.h)
T0, T1, T2, T3, T4 = (9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
                      7.00332514112805075473e3, 5.55923013010394962768e4)
U0, U1, U2, U3, U4 = (3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
                      2.26290000613890934246e4, 4.92673942608635921086e4)
P0, P1, P2, P3, P4, P5, P6, P7, P8 = (2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
                                      4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
                                      9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2)
Q0, Q1, Q2, Q3, Q4, Q5, Q6, Q7 = (1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
                                  9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
                                  1.65666309194161350182e3, 5.57535340817727675546e2)
R0, R1, R2, R3, R4, R5 = (5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
                          6.16021097993053585195e0, 7.40974269950448939160e0, 2.97886665372100240670e0)
S0, S1, S2, S3, S4, S5 = (2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
                          1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0)

#: ``error_model="numpy"``: no zero-division checks (they are branches that stop vectorization); ``contract`` lets LLVM
#: fuse multiply-adds, which only removes roundings (no reassociation: the error-free transformations stay exact).
_JIT = {"cache": True, "fastmath": {"contract"}, "error_model": "numpy"}
_INLINE = {"inline": "always", **_JIT}


@numba.njit(**_INLINE)
def _exp_parts(t):  # pragma: no cover - compiled
    """``(k, q)`` with :math:`e^t = 2^k(1 + q)` for :math:`t \\in [-746, 709]` (clamped; NaN gives k = -1076)."""
    tc = t if t >= -746.0 else -746.0
    tc = tc if tc <= 709.0 else 709.0
    k = math.floor(tc * _LOG2E + 0.5)
    r = (tc - k * _LN2_HI) - k * _LN2_LO
    q = F13
    q = q * r + F12
    q = q * r + F11
    q = q * r + F10
    q = q * r + F9
    q = q * r + F8
    q = q * r + F7
    q = q * r + F6
    q = q * r + F5
    q = q * r + F4
    q = q * r + F3
    q = q * r + F2
    q = q * r + 1.0
    return k, q * r


@numba.njit(**_INLINE)
def exp_(t):  # pragma: no cover - compiled
    """:math:`e^t` for float64 ``t`` (branch-free; within about an ulp; :math:`e^{-\\infty} = 0`, NaN propagates)."""
    k, q = _exp_parts(t)
    half = k >> 1
    s1 = _bits_float((half + 1023) << 52)
    s2 = _bits_float((k - half + 1023) << 52)
    y = ((1.0 + q) * s1) * s2
    return y if t == t else t


@numba.njit(**_INLINE)
def gelu_(z):  # pragma: no cover - compiled
    """``(z Φ(z), Φ(z) + z φ(z))`` for float64 ``z``: GeLU and its derivative."""
    s = z * z
    err = _fma(z, z, -s)  # z² = s + err exactly
    e = exp_(-0.5 * s)
    u = e - (0.5 * err) * e  # e^{-z²/2} = e^{-s/2} e^{-err/2}, |err/2| < 2^-53 s/2
    x = z * _SQRT1_2
    ax = abs(x)
    # erf(x) = x T(x²)/U(x²), |x| < 1
    x2 = x * x
    tp = (((T0 * x2 + T1) * x2 + T2) * x2 + T3) * x2 + T4
    up = ((((x2 + U0) * x2 + U1) * x2 + U2) * x2 + U3) * x2 + U4
    # erfc(x) = e^{-x²} P(x)/Q(x) for 1 <= x < 8, R(x)/S(x) beyond
    pp = (((((((P0 * ax + P1) * ax + P2) * ax + P3) * ax + P4) * ax + P5) * ax + P6) * ax + P7) * ax + P8
    qp = (((((((ax + Q0) * ax + Q1) * ax + Q2) * ax + Q3) * ax + Q4) * ax + Q5) * ax + Q6) * ax + Q7
    rp = ((((R0 * ax + R1) * ax + R2) * ax + R3) * ax + R4) * ax + R5
    sp = (((((ax + S0) * ax + S1) * ax + S2) * ax + S3) * ax + S4) * ax + S5
    far = ax >= 8.0
    num = rp if far else pp
    den = sp if far else qp
    tail = (0.5 * u) * num  # Φ(-|z|) * den
    num = tail if z < 0.0 else den - tail
    near = ax < 1.0
    num = 0.5 * (up + x * tp) if near else num
    den = up if near else den
    cdf = num / den
    a = z * cdf
    d = cdf + z * (_INV_SQRT2PI * u)
    a = z if z > 40.0 else a  # Φ = 1 and φ = 0 to double precision (also at +inf)
    d = 1.0 if z > 40.0 else d
    a = 0.0 if z < -40.0 else a  # Φ underflows (also at -inf)
    d = 0.0 if z < -40.0 else d
    return a, d


@numba.njit(**_INLINE)
def log1p_unit(e):  # pragma: no cover - compiled
    """:math:`\\log(1 + e)` for :math:`e \\in [0, 1]` (absolute error about 1e-16)."""
    w = 1.0 + e
    c = (e - (w - 1.0)) / w  # the rounding of 1 + e, to first order
    big = w > _SQRT2
    f = 0.5 * w - 1.0 if big else w - 1.0  # both exact
    s = f / (2.0 + f)  # log(1 + f) = 2 atanh(s), |s| < 0.1716
    q = s * s
    p = 1.0 / 23.0
    p = p * q + 1.0 / 21.0
    p = p * q + 1.0 / 19.0
    p = p * q + 1.0 / 17.0
    p = p * q + 1.0 / 15.0
    p = p * q + 1.0 / 13.0
    p = p * q + 1.0 / 11.0
    p = p * q + 1.0 / 9.0
    p = p * q + 1.0 / 7.0
    p = p * q + 1.0 / 5.0
    p = p * q + 1.0 / 3.0
    lg = 2.0 * s + (2.0 * s * q) * p + c
    return lg + _LN2 if big else lg


@numba.njit(**_INLINE)
def softplus_(z):  # pragma: no cover - compiled
    """``(log(1 + e^z) − log 2, 1/(1 + e^{-z}))`` for float64 ``z``."""
    e = exp_(-abs(z))
    a = (z if z > 0.0 else 0.0) + (log1p_unit(e) - _LN2)
    d = (1.0 if z > 0.0 else e) / (1.0 + e)
    a = z if z != z else a
    return a, d


@numba.njit(**_INLINE)
def tanh_(z):  # pragma: no cover - compiled
    """``(tanh z, 1 − tanh² z)`` for float64 ``z``, both with relative accuracy (through expm1(-2|z|))."""
    t = -2.0 * abs(z)
    k, q = _exp_parts(t)
    scale = _bits_float(((k if k > -64 else -64) + 1023) << 52)
    m = scale * q + (scale - 1.0)  # expm1(t) (exact cancellation-free form for k = 0)
    m = -1.0 if t < -40.0 else m  # expm1(-40) = -1 to double precision
    e = exp_(t)
    inv = 1.0 / (2.0 + m)  # 1/(1 + e^t)
    th = -m * inv
    th = -th if z < 0.0 else th
    d = (4.0 * e) * (inv * inv)
    return (z if z != z else th), (z if z != z else d)


@intrinsic
def _bits_float32(typingctx, bits):  # pragma: no cover - compiled
    """The float32 whose IEEE bits are the low 32 bits of the integer ``bits`` (a bit cast)."""
    if not (isinstance(bits, types.Integer) and bits.bitwidth >= 32):
        return None

    def codegen(context, builder, signature, args):
        low = args[0] if bits.bitwidth == 32 else builder.trunc(args[0], ir.IntType(32))
        return builder.bitcast(low, ir.FloatType())

    return types.float32(bits), codegen


_f32 = np.float32
_LOG2E_32, _LN2_HI_32, _LN2_LO_32 = _f32(_LOG2E), _f32(0.693359375), _f32(-2.12194440e-4)  # Cephes expf split
_E_LO_32, _E_HI_32, _HALF_32, _ONE_32, _ZERO_32 = _f32(-104.0), _f32(88.0), _f32(0.5), _f32(1.0), _f32(0.0)
G2, G3, G4, G5, G6, G7 = (_f32(c) for c in _F[2:8])
_SQRT1_2_32, _INV_SQRT2PI_32 = _f32(_SQRT1_2), _f32(_INV_SQRT2PI)
T0f, T1f, T2f, T3f, T4f = (_f32(c) for c in (T0, T1, T2, T3, T4))
U0f, U1f, U2f, U3f, U4f = (_f32(c) for c in (U0, U1, U2, U3, U4))
P0f, P1f, P2f, P3f, P4f, P5f, P6f, P7f, P8f = (_f32(c) for c in (P0, P1, P2, P3, P4, P5, P6, P7, P8))
Q0f, Q1f, Q2f, Q3f, Q4f, Q5f, Q6f, Q7f = (_f32(c) for c in (Q0, Q1, Q2, Q3, Q4, Q5, Q6, Q7))
R0f, R1f, R2f, R3f, R4f, R5f = (_f32(c) for c in (R0, R1, R2, R3, R4, R5))
S0f, S1f, S2f, S3f, S4f, S5f = (_f32(c) for c in (S0, S1, S2, S3, S4, S5))
_FORTY_32, _EIGHT_32 = _f32(40.0), _f32(8.0)


@numba.njit(**_INLINE)
def exp32_(t):  # pragma: no cover - compiled
    """:math:`e^t` in float32 arithmetic (Taylor degree 7 after the reduction: truncation below 1e-8)."""
    tc = t if t >= _E_LO_32 else _E_LO_32
    tc = tc if tc <= _E_HI_32 else _E_HI_32
    k = math.floor(tc * _LOG2E_32 + _HALF_32)
    kf = np.float32(k)
    r = (tc - kf * _LN2_HI_32) - kf * _LN2_LO_32
    q = G7
    q = q * r + G6
    q = q * r + G5
    q = q * r + G4
    q = q * r + G3
    q = q * r + G2
    q = q * r + _ONE_32
    q = q * r
    half = k >> 1
    s1 = _bits_float32((half + 127) << 23)
    s2 = _bits_float32((k - half + 127) << 23)
    y = ((_ONE_32 + q) * s1) * s2
    return y if t == t else t


@numba.njit(**_INLINE)
def gelu32_(z):  # pragma: no cover - compiled
    """:func:`gelu_` in float32 arithmetic (twice the SIMD lanes), for float32 networks."""
    s = z * z
    err = _fma(z, z, -s)
    e = exp32_(-_HALF_32 * s)
    u = e - (_HALF_32 * err) * e
    x = z * _SQRT1_2_32
    ax = abs(x)
    x2 = x * x
    tp = (((T0f * x2 + T1f) * x2 + T2f) * x2 + T3f) * x2 + T4f
    up = ((((x2 + U0f) * x2 + U1f) * x2 + U2f) * x2 + U3f) * x2 + U4f
    pp = (((((((P0f * ax + P1f) * ax + P2f) * ax + P3f) * ax + P4f) * ax + P5f) * ax + P6f) * ax + P7f) * ax + P8f
    qp = (((((((ax + Q0f) * ax + Q1f) * ax + Q2f) * ax + Q3f) * ax + Q4f) * ax + Q5f) * ax + Q6f) * ax + Q7f
    rp = ((((R0f * ax + R1f) * ax + R2f) * ax + R3f) * ax + R4f) * ax + R5f
    sp = (((((ax + S0f) * ax + S1f) * ax + S2f) * ax + S3f) * ax + S4f) * ax + S5f
    far = ax >= _EIGHT_32
    num = rp if far else pp
    den = sp if far else qp
    tail = (_HALF_32 * u) * num
    num = tail if z < _ZERO_32 else den - tail
    near = ax < _ONE_32
    num = _HALF_32 * (up + x * tp) if near else num
    den = up if near else den
    cdf = num / den
    a = z * cdf
    d = cdf + z * (_INV_SQRT2PI_32 * u)
    a = z if z > _FORTY_32 else a
    d = _ONE_32 if z > _FORTY_32 else d
    a = _ZERO_32 if z < -_FORTY_32 else a
    d = _ZERO_32 if z < -_FORTY_32 else d
    return a, d


@numba.njit(**_INLINE)
def relu_(z):  # pragma: no cover - compiled
    """``(max(z, 0), 1{z >= 0})`` (φ'(0) = 1 as in P1; NaN propagates)."""
    a = 0.0 if z < 0.0 else z
    d = 0.0 if z < 0.0 else (1.0 if z >= 0.0 else z)
    return a, d


# ---------------------------------------------------------------------------------------------------- the GD pass
def blocks(width: int) -> int:
    """Number of neuron blocks (each with its own partial outputs): fixed by the width alone."""
    return max(1, min(MAX_BLOCKS, width))


@numba.njit(cache=True, fastmath={"contract", "reassoc"}, error_model="numpy")
def _gradient_row(Ar, Dr, EX, e, g):  # pragma: no cover - compiled
    """``g[k] = Σ_i Dr[i] EX[k, i]`` for every row of ``EX``; returns :math:`\\sum_i A_{ri} e_i`.

    Reassociated (so that the reductions vectorize), four rows of ``EX`` per sweep over ``Dr``."""
    K, n = EX.shape
    k0 = 0
    while k0 + 4 <= K:
        e0, e1, e2, e3 = EX[k0], EX[k0 + 1], EX[k0 + 2], EX[k0 + 3]
        s0 = s1 = s2 = s3 = 0.0
        for i in range(n):
            di = np.float64(Dr[i])
            s0 += di * e0[i]
            s1 += di * e1[i]
            s2 += di * e2[i]
            s3 += di * e3[i]
        g[k0], g[k0 + 1], g[k0 + 2], g[k0 + 3] = s0, s1, s2, s3
        k0 += 4
    for k in range(k0, K):
        ek = EX[k]
        s = 0.0
        for i in range(n):
            s += np.float64(Dr[i]) * ek[i]
        g[k] = s
    s = 0.0
    for i in range(n):
        s += np.float64(Ar[i]) * e[i]
    return s


@numba.njit(**_JIT)
def _preactivation(XT, w, br, z):  # pragma: no cover - compiled
    """``z[i] = Σ_k XT[k, i] w[k] − br``, four inputs' coordinates per sweep over ``z``."""
    d, n = XT.shape
    for i in range(n):
        z[i] = -br
    k0 = 0
    while k0 + 4 <= d:
        w0, w1, w2, w3 = np.float64(w[k0]), np.float64(w[k0 + 1]), np.float64(w[k0 + 2]), np.float64(w[k0 + 3])
        x0, x1, x2, x3 = XT[k0], XT[k0 + 1], XT[k0 + 2], XT[k0 + 3]
        for i in range(n):
            z[i] += ((x0[i] * w0 + x1[i] * w1) + x2[i] * w2) + x3[i] * w3
        k0 += 4
    for k in range(k0, d):
        wk = np.float64(w[k])
        xk = XT[k]
        for i in range(n):
            z[i] += xk[i] * wk


@numba.njit(cache=True, fastmath={"contract", "reassoc"}, error_model="numpy")
def _gradient_tile(A0, A1, A2, A3, D0, D1, D2, D3, EX, e, G):  # pragma: no cover - compiled
    """:func:`_gradient_row` for four neurons at once (``G[j, k]``; returns the four :math:`\\sum_i A_{ji} e_i`):
    each row of ``EX`` is loaded once for the four, which keeps the sweep in L1 when ``EX`` is not."""
    K, n = EX.shape
    k0 = 0
    while k0 + 4 <= K:
        e0, e1, e2, e3 = EX[k0], EX[k0 + 1], EX[k0 + 2], EX[k0 + 3]
        s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = 0.0
        s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = 0.0
        for i in range(n):
            x0, x1, x2, x3 = e0[i], e1[i], e2[i], e3[i]
            d = np.float64(D0[i])
            s00 += d * x0
            s01 += d * x1
            s02 += d * x2
            s03 += d * x3
            d = np.float64(D1[i])
            s10 += d * x0
            s11 += d * x1
            s12 += d * x2
            s13 += d * x3
            d = np.float64(D2[i])
            s20 += d * x0
            s21 += d * x1
            s22 += d * x2
            s23 += d * x3
            d = np.float64(D3[i])
            s30 += d * x0
            s31 += d * x1
            s32 += d * x2
            s33 += d * x3
        G[0, k0], G[0, k0 + 1], G[0, k0 + 2], G[0, k0 + 3] = s00, s01, s02, s03
        G[1, k0], G[1, k0 + 1], G[1, k0 + 2], G[1, k0 + 3] = s10, s11, s12, s13
        G[2, k0], G[2, k0 + 1], G[2, k0 + 2], G[2, k0 + 3] = s20, s21, s22, s23
        G[3, k0], G[3, k0 + 1], G[3, k0 + 2], G[3, k0 + 3] = s30, s31, s32, s33
        k0 += 4
    for k in range(k0, K):
        ek = EX[k]
        s0 = s1 = s2 = s3 = 0.0
        for i in range(n):
            x = ek[i]
            s0 += np.float64(D0[i]) * x
            s1 += np.float64(D1[i]) * x
            s2 += np.float64(D2[i]) * x
            s3 += np.float64(D3[i]) * x
        G[0, k], G[1, k], G[2, k], G[3, k] = s0, s1, s2, s3
    s0 = s1 = s2 = s3 = 0.0
    for i in range(n):
        x = e[i]
        s0 += np.float64(A0[i]) * x
        s1 += np.float64(A1[i]) * x
        s2 += np.float64(A2[i]) * x
        s3 += np.float64(A3[i]) * x
    return s0, s1, s2, s3


@numba.njit(**_JIT)
def _preactivation_tile(XT, W, b, r, Z):  # pragma: no cover - compiled
    """:func:`_preactivation` of neurons ``r, …, r+3`` into the rows of ``Z`` (four coordinates per sweep, each row
    of ``XT`` loaded once for the four neurons)."""
    d, n = XT.shape
    z0, z1, z2, z3 = Z[0], Z[1], Z[2], Z[3]
    b0, b1, b2, b3 = -np.float64(b[r]), -np.float64(b[r + 1]), -np.float64(b[r + 2]), -np.float64(b[r + 3])
    for i in range(n):
        z0[i] = b0
        z1[i] = b1
        z2[i] = b2
        z3[i] = b3
    k0 = 0
    while k0 + 4 <= d:
        x0, x1, x2, x3 = XT[k0], XT[k0 + 1], XT[k0 + 2], XT[k0 + 3]
        w00, w01, w02, w03 = W[r, k0], W[r, k0 + 1], W[r, k0 + 2], W[r, k0 + 3]
        w10, w11, w12, w13 = W[r + 1, k0], W[r + 1, k0 + 1], W[r + 1, k0 + 2], W[r + 1, k0 + 3]
        w20, w21, w22, w23 = W[r + 2, k0], W[r + 2, k0 + 1], W[r + 2, k0 + 2], W[r + 2, k0 + 3]
        w30, w31, w32, w33 = W[r + 3, k0], W[r + 3, k0 + 1], W[r + 3, k0 + 2], W[r + 3, k0 + 3]
        for i in range(n):
            p, q, s, t = x0[i], x1[i], x2[i], x3[i]
            z0[i] += ((p * np.float64(w00) + q * np.float64(w01)) + s * np.float64(w02)) + t * np.float64(w03)
            z1[i] += ((p * np.float64(w10) + q * np.float64(w11)) + s * np.float64(w12)) + t * np.float64(w13)
            z2[i] += ((p * np.float64(w20) + q * np.float64(w21)) + s * np.float64(w22)) + t * np.float64(w23)
            z3[i] += ((p * np.float64(w30) + q * np.float64(w31)) + s * np.float64(w32)) + t * np.float64(w33)
        k0 += 4
    for k in range(k0, d):
        x0 = XT[k]
        w0, w1, w2, w3 = np.float64(W[r, k]), np.float64(W[r + 1, k]), np.float64(W[r + 2, k]), np.float64(W[r + 3, k])
        for i in range(n):
            p = x0[i]
            z0[i] += p * w0
            z1[i] += p * w1
            z2[i] += p * w2
            z3[i] += p * w3


@numba.njit(**_JIT)
def _update(r, g, gv, W, v, b, lr, train_w, train_v, train_b):  # pragma: no cover - compiled
    """One GD step on neuron ``r`` from its sums ``g`` (:math:`\\sum_i D_{ri}e_i x_{ik}`, then
    :math:`\\sum_i D_{ri}e_i`) and ``gv`` (:math:`\\sum_i A_{ri}e_i`)."""
    d = W.shape[1]
    step = lr * v[r]
    if train_w:
        for k in range(d):
            W[r, k] -= step * g[k]
    if train_b:
        b[r] += step * g[d]
    if train_v:
        v[r] -= lr * gv


@numba.njit(**_JIT)
def _activate_row(z, Ar, Dr, code, v, fp, single):  # pragma: no cover - compiled
    """``Ar`` = φ(z), ``Dr`` = φ'(z) and ``fp += v Ar`` (one vectorized loop per activation; ``single``: GeLU in
    float32 arithmetic)."""
    if code == GELU and single:
        for i in range(z.shape[0]):
            a, d = gelu32_(np.float32(z[i]))
            Ar[i] = a
            Dr[i] = d
            fp[i] += v * np.float64(a)
    elif code == GELU:
        for i in range(z.shape[0]):
            a, d = gelu_(z[i])
            Ar[i] = a
            Dr[i] = d
            fp[i] += v * a
    elif code == SOFTPLUS:
        for i in range(z.shape[0]):
            a, d = softplus_(z[i])
            Ar[i] = a
            Dr[i] = d
            fp[i] += v * a
    elif code == TANH:
        for i in range(z.shape[0]):
            a, d = tanh_(z[i])
            Ar[i] = a
            Dr[i] = d
            fp[i] += v * a
    else:
        for i in range(z.shape[0]):
            a, d = relu_(z[i])
            Ar[i] = a
            Dr[i] = d
            fp[i] += v * a


@numba.njit(**_JIT)
def _relu_counts(Dr, D0r, cp):  # pragma: no cover - compiled
    """Adds the active indicator of the row to ``cp``; returns the flips against ``D0r``."""
    flips = 0
    for i in range(Dr.shape[0]):
        on = Dr[i] > 0
        cp[i] += 1.0 if on else 0.0
        flips += 1 if on != D0r[i] else 0
    return flips


@numba.njit(**_JIT)
def _block(blk, XT, W, v, b, At, Dt, fpart, EX, e, lr, code, single, backward, train_w, train_v, train_b, counts,
           D0, cpart, flips):  # pragma: no cover - compiled
    """Neurons of block ``blk``: optionally one GD step on them, then φ, φ' at the (new) parameters, their share of
    the outputs (``fpart[blk]``) and, with ``counts``, ReLU activity (``cpart[blk]``, ``flips[blk]``)."""
    width, n = W.shape[0], XT.shape[1]
    nblk = fpart.shape[0]
    lo, hi = blk * width // nblk, (blk + 1) * width // nblk
    fp = fpart[blk]
    fp[:] = 0.0
    if counts:
        cpart[blk, :] = 0.0
        flips[blk] = 0
    Z = np.empty((4, n))
    G = np.empty((4, EX.shape[0]))
    r = lo
    while r < hi:
        tile = 4 if r + 4 <= hi else 1  # four neurons at a time, then one by one
        if backward:
            if tile == 4:
                gvs = _gradient_tile(At[r], At[r + 1], At[r + 2], At[r + 3], Dt[r], Dt[r + 1], Dt[r + 2], Dt[r + 3],
                                     EX, e, G)
                for j in range(4):
                    _update(r + j, G[j], gvs[j], W, v, b, lr, train_w, train_v, train_b)
            else:
                gv = _gradient_row(At[r], Dt[r], EX, e, G[0])
                _update(r, G[0], gv, W, v, b, lr, train_w, train_v, train_b)
        if tile == 4:
            _preactivation_tile(XT, W, b, r, Z)
        else:
            _preactivation(XT, W[r], np.float64(b[r]), Z[0])
        for j in range(tile):
            Dr = Dt[r + j]
            _activate_row(Z[j], At[r + j], Dr, code, np.float64(v[r + j]), fp, single)
            if counts:
                flips[blk] += _relu_counts(Dr, D0[r + j], cpart[blk])
        r += tile


@numba.njit(parallel=True, **_JIT)
def _pass_parallel(XT, W, v, b, At, Dt, fpart, EX, e, lr, code, single, backward, train_w, train_v, train_b, counts,
                   D0, cpart, flips):  # pragma: no cover - compiled
    for blk in numba.prange(fpart.shape[0]):
        _block(blk, XT, W, v, b, At, Dt, fpart, EX, e, lr, code, single, backward, train_w, train_v, train_b, counts,
               D0, cpart, flips)


@numba.njit(**_JIT)
def _pass_serial(XT, W, v, b, At, Dt, fpart, EX, e, lr, code, single, backward, train_w, train_v, train_b, counts,
                 D0, cpart, flips):  # pragma: no cover - compiled
    for blk in range(fpart.shape[0]):
        _block(blk, XT, W, v, b, At, Dt, fpart, EX, e, lr, code, single, backward, train_w, train_v, train_b, counts,
               D0, cpart, flips)


_NO_EX, _NO_E = np.zeros((0, 1)), np.zeros(1)  # placeholders of unused arguments (never written)
_NO_D0, _NO_CPART, _NO_FLIPS = np.zeros((1, 1), dtype=np.bool_), np.zeros((1, 1)), np.zeros(1, dtype=np.int64)


def gd_pass(XT, W, v, b, At, Dt, fpart, code, *, EX=None, e=None, lr=0.0, train_w=False, train_v=False,
            train_b=False, D0=None, cpart=None, flips=None):
    """One pass over the neurons (see the module docstring), in place.

    ``XT`` (d × n, float64) the inputs, ``W`` (width × d), ``v`` (width: the output weights, or zeros), ``b``
    (width) the parameters, ``At``, ``Dt`` (width × n, the network's dtype) receive φ and φ' at the end,
    ``fpart`` (``blocks(width)`` × n) the partial outputs :math:`\\sum_{r \\in \\text{block}} v_r A_{ri}`, ``code`` the
    activation. With ``EX`` (rows :math:`e \\circ x_{\\cdot k}`, then :math:`e`) and ``e``: first one GD step of size
    ``lr`` on the groups ``train_w``/``train_v``/``train_b`` from the ``At``, ``Dt`` already there. With ``D0``
    (width × n booleans), ``cpart`` and ``flips``: ReLU activity per input and flips against ``D0`` per block.
    """
    backward = EX is not None
    counts = D0 is not None
    if EX is None:
        EX, e = _NO_EX, _NO_E
    if D0 is None:
        D0, cpart, flips = _NO_D0, _NO_CPART, _NO_FLIPS
    run = _pass_parallel if At.size >= PARALLEL_ENTRIES and numba.get_num_threads() > 1 else _pass_serial
    run(XT, W, v, b, At, Dt, fpart, EX, e, float(lr), int(code), bool(At.dtype == np.float32), backward, bool(train_w),
        bool(train_v), bool(train_b), counts, D0, cpart, flips)
