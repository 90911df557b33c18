"""numba kernels, alone in one module: plain functions, so ``kernel.py_func`` stays testable.

Callers (the public modules) check every argument; the kernels trust theirs.

fastmath. The kernels behind the signed figures (Goertzel, block energy, the sums and scores of
``dsp.bursts``) are compiled with ``fastmath=True``: LLVM may then reassociate sums into vector
lanes and contract multiply-adds, so a result depends on the CPU's vector width and FMA, not only
on the input. Kept, because it pays (2026-11-30, 2 shared cores: one process holding both builds,
calls alternating A/B, medians of 15 calls on 60 s and of 5 on 1 h of int16 audio; two sessions,
noisy): without it ``goertzel_power`` takes 0.9-1.25x as long with 1-8 frequencies and 1.45-1.6x
with 32, ``detect_bursts`` 1.7-1.8x (1 h, one tone: 0.73 s -> 1.32 s); per kernel on 60 s,
``block_energy`` 25x, ``edge_scores`` 3x, ``hann_demod`` 1.4x, the others within 3 %. What it
moves: between the two builds on one CPU the Goertzel power differs by at most 6e-12 (relative),
onsets not at all, SNR by 3e-10 dB, and every figure of the runs of tests/verify/test_regression.py
and of a real recording is identical after rounding. Another CPU (not measured: one CPU here)
should differ by the same order, so a figure could only change its last rounded digit, when it
sits on a rounding boundary: ``verify.check`` allows rel
1e-6 / abs 2e-3 for that, and verify rounds the onset reference to 1e-4 sample so that a
frame-aligned onset cannot change frame. A count or a state would change only for a value within
~1e-10 (relative) of a threshold.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# The Goertzel kernel's three layouts (see goertzel_blocks): below WIDE frequencies, eight blocks
# run side by side; from WIDE, the frequencies fill the vector lanes and advance STEP samples at a
# time; from MANY, there are enough frequencies to hide latency, and they advance one at a time.
WIDE = 4
MANY = 24
STEP = 8


@njit(cache=True, nogil=True)
def sine_int16(out, phase, step, scale):  # pragma: no cover - compiled
    """Fill ``out`` with round(scale * sin(2 pi (phase + i step))); return the next phase in cycles.

    The phase is kept in cycles and wrapped to [0, 1) so long runs keep full precision.
    """
    two_pi = 2.0 * math.pi
    for i in range(out.shape[0]):
        out[i] = np.int16(round(scale * math.sin(two_pi * (phase + i * step))))
    nxt = phase + out.shape[0] * step
    return nxt - math.floor(nxt)


@njit(cache=True, nogil=True)
def burst_envelope(t, ramp, duration):  # pragma: no cover - compiled
    """The burst envelope at time ``t`` samples after the burst's sample 0: raised-cosine ramps."""
    if t <= 0.0 or t >= duration:
        return 0.0
    if t < ramp:
        return 0.5 - 0.5 * math.cos(math.pi * t / ramp)
    if t > duration - ramp:
        return 0.5 - 0.5 * math.cos(math.pi * (duration - t) / ramp)
    return 1.0


@njit(cache=True, nogil=True)
def burst_wave(out, offset, omega, ramp, duration, amplitude):  # pragma: no cover - compiled
    """out[n] = amplitude * env(n - offset) * sin(omega (n - offset)), float64."""
    for n in range(out.shape[0]):
        t = n - offset
        out[n] = amplitude * burst_envelope(t, ramp, duration) * math.sin(omega * t)


@njit(cache=True, nogil=True, fastmath=True)
def _goertzel_over_freqs(x, src, block, coeffs, s_a, s_b, out_row):  # pragma: no cover
    """One block, all frequencies side by side: each step is one vector operation over K.

    Four samples per pass so the states stay in registers between loads and stores.
    """
    n_freqs = coeffs.shape[0]
    for k in range(n_freqs):
        s_a[k] = 0.0  # s[n-2]
        s_b[k] = 0.0  # s[n-1]
    xb = x[src : src + block]  # indexed from 0: no negative-index check
    for m in range(block // 4):
        n = 4 * m
        x0 = float(xb[n])
        x1 = float(xb[n + 1])
        x2 = float(xb[n + 2])
        x3 = float(xb[n + 3])
        for k in range(n_freqs):
            c = coeffs[k]
            a = x0 + c * s_b[k] - s_a[k]
            b = x1 + c * a - s_b[k]
            a = x2 + c * b - a
            b = x3 + c * a - b
            s_a[k] = a
            s_b[k] = b
    for n in range(block - block % 4, block):
        x0 = float(xb[n])
        for k in range(n_freqs):
            a = x0 + coeffs[k] * s_b[k] - s_a[k]
            s_a[k] = s_b[k]
            s_b[k] = a
    for k in range(n_freqs):
        last = s_b[k]
        prev = s_a[k]
        out_row[k] = last * last + prev * prev - coeffs[k] * last * prev


@njit(cache=True, nogil=True, fastmath=True)
def _goertzel_eight_blocks(x, src, block, c, out, row, k):  # pragma: no cover
    """Eight consecutive blocks at one frequency, eight independent recursions in registers.

    With few frequencies one recursion alone waits on its own multiply-add latency; eight
    interleaved ones keep the floating-point units busy.
    """
    # One view per block, indexed from 0: numba can then drop its negative-index check.
    x0 = x[src : src + block]
    x1 = x[src + block : src + 2 * block]
    x2 = x[src + 2 * block : src + 3 * block]
    x3 = x[src + 3 * block : src + 4 * block]
    x4 = x[src + 4 * block : src + 5 * block]
    x5 = x[src + 5 * block : src + 6 * block]
    x6 = x[src + 6 * block : src + 7 * block]
    x7 = x[src + 7 * block : src + 8 * block]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0  # s[n-2], then s[n]
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = 0.0  # s[n-1], then s[n+1]
    for m in range(block // 2):
        n = 2 * m
        a0 = x0[n] + c * b0 - a0
        a1 = x1[n] + c * b1 - a1
        a2 = x2[n] + c * b2 - a2
        a3 = x3[n] + c * b3 - a3
        a4 = x4[n] + c * b4 - a4
        a5 = x5[n] + c * b5 - a5
        a6 = x6[n] + c * b6 - a6
        a7 = x7[n] + c * b7 - a7
        n += 1
        b0 = x0[n] + c * a0 - b0
        b1 = x1[n] + c * a1 - b1
        b2 = x2[n] + c * a2 - b2
        b3 = x3[n] + c * a3 - b3
        b4 = x4[n] + c * a4 - b4
        b5 = x5[n] + c * a5 - b5
        b6 = x6[n] + c * a6 - b6
        b7 = x7[n] + c * a7 - b7
    if block % 2:  # odd block length: one more step; then the last state is in a, not b
        n = block - 1
        a0, b0 = x0[n] + c * b0 - a0, b0
        a1, b1 = x1[n] + c * b1 - a1, b1
        a2, b2 = x2[n] + c * b2 - a2, b2
        a3, b3 = x3[n] + c * b3 - a3, b3
        a4, b4 = x4[n] + c * b4 - a4, b4
        a5, b5 = x5[n] + c * b5 - a5, b5
        a6, b6 = x6[n] + c * b6 - a6, b6
        a7, b7 = x7[n] + c * b7 - a7, b7
    # |X|^2 = s1^2 + s2^2 - c s1 s2 is symmetric in (s1, s2): which of a, b is last does not matter
    out[row, k] = a0 * a0 + b0 * b0 - c * a0 * b0
    out[row + 1, k] = a1 * a1 + b1 * b1 - c * a1 * b1
    out[row + 2, k] = a2 * a2 + b2 * b2 - c * a2 * b2
    out[row + 3, k] = a3 * a3 + b3 * b3 - c * a3 * b3
    out[row + 4, k] = a4 * a4 + b4 * b4 - c * a4 * b4
    out[row + 5, k] = a5 * a5 + b5 * b5 - c * a5 * b5
    out[row + 6, k] = a6 * a6 + b6 * b6 - c * a6 * b6
    out[row + 7, k] = a7 * a7 + b7 * b7 - c * a7 * b7


@njit(cache=True, nogil=True, fastmath=True)
def _goertzel_stepped(x, src, block, u, s_a, s_b, out_row):  # pragma: no cover - compiled
    """One block, all frequencies side by side, ``STEP`` samples per step.

    One step of the recursion waits on the previous one (multiply-add latency): with few
    frequencies the vector units idle. Unrolled, the recursion gives the state ``STEP`` samples
    on directly from the state now and the inputs in between,
    ``s[n+m] = sum_j U[m-j] x[n+j] + U[m+1] s[n-1] - U[m] s[n-2]`` with ``U`` the Chebyshev-like
    table ``u`` (``u[0] = 1``, ``u[1] = c``, ``u[i+1] = c u[i] - u[i-1]``), so the chain that
    waits is one step per ``STEP`` samples; the input terms do not wait on anything.
    """
    n_freqs = u.shape[1]
    for k in range(n_freqs):
        s_a[k] = 0.0  # s[n-2]
        s_b[k] = 0.0  # s[n-1]
    xb = x[src : src + block]  # indexed from 0: no negative-index check
    for m in range(block // 8):
        n = 8 * m
        x0 = float(xb[n])
        x1 = float(xb[n + 1])
        x2 = float(xb[n + 2])
        x3 = float(xb[n + 3])
        x4 = float(xb[n + 4])
        x5 = float(xb[n + 5])
        x6 = float(xb[n + 6])
        x7 = float(xb[n + 7])
        for k in range(n_freqs):
            u1 = u[1, k]
            u2 = u[2, k]
            u3 = u[3, k]
            u4 = u[4, k]
            u5 = u[5, k]
            u6 = u[6, k]
            u7 = u[7, k]
            p = s_b[k]
            q = s_a[k]
            s_b[k] = (x7 + u1 * x6 + u2 * x5 + u3 * x4 + u4 * x3 + u5 * x2 + u6 * x1 + u7 * x0) + (
                u[8, k] * p - u7 * q
            )
            s_a[k] = (x6 + u1 * x5 + u2 * x4 + u3 * x3 + u4 * x2 + u5 * x1 + u6 * x0) + (
                u7 * p - u6 * q
            )
    for n in range(block - block % 8, block):
        x0 = float(xb[n])
        for k in range(n_freqs):
            a = x0 + u[1, k] * s_b[k] - s_a[k]
            s_a[k] = s_b[k]
            s_b[k] = a
    for k in range(n_freqs):
        last = s_b[k]
        prev = s_a[k]
        out_row[k] = last * last + prev * prev - u[1, k] * last * prev


@njit(cache=True, nogil=True, fastmath=True)
def goertzel_blocks(x, start, n_blocks, block, u, out, s_a, s_b):  # pragma: no cover
    """|DTFT|^2 of ``n_blocks`` consecutive blocks of ``x`` from sample ``start``, one column per
    frequency, written to ``out[:n_blocks, :]``.

    ``u`` is the ``(STEP + 1, K)`` table of ``_goertzel_stepped`` (``u[1] = 2 cos(omega_k)``,
    the Goertzel coefficients); ``s_a`` and ``s_b`` are workspaces of K states. The layout that
    keeps the floating-point units busy depends on K: eight blocks side by side (K < WIDE),
    frequencies side by side stepping STEP samples (K < MANY), or one sample (K >= MANY).
    """
    n_freqs = u.shape[1]
    coeffs = u[1]
    first = 0
    if n_freqs < WIDE:
        first = n_blocks - n_blocks % 8
        for g in range(0, first, 8):
            for k in range(n_freqs):
                _goertzel_eight_blocks(x, start + g * block, block, coeffs[k], out, g, k)
    for b in range(first, n_blocks):
        if n_freqs < MANY:
            _goertzel_stepped(x, start + b * block, block, u, s_a, s_b, out[b])
        else:
            _goertzel_over_freqs(x, start + b * block, block, coeffs, s_a, s_b, out[b])


@njit(cache=True, nogil=True, fastmath=True)
def block_energy(x, start, n_blocks, block, out):  # pragma: no cover - compiled
    """Sum of squares of each of ``n_blocks`` blocks of ``x`` from sample ``start``."""
    for b in range(n_blocks):
        acc = 0.0
        xb = x[start + b * block : start + (b + 1) * block]  # from 0: no negative-index check
        for n in range(block):
            v = float(xb[n])
            acc += v * v
        out[b] = acc


@njit(cache=True, nogil=True, fastmath=True)
def edge_scores(v_cum, u, s2, first, taus, ramp, rising, gain):  # pragma: no cover - compiled
    """Log-likelihood (up to a constant shared by all candidates) of each edge time in ``taus``.

    Over the region of samples ``first + i``: ``u[i] = x * sin(carrier)``, ``s2[i] =
    sin(carrier)**2``, and ``v_cum`` is the prefix sum (leading 0) of ``2 gain u - gain**2 s2``.
    The carrier's phase is the same for every candidate (they lie whole periods apart, or the
    phase is known), so only the envelope differs: a rising raised-cosine ramp starting at tau, or
    a falling one ending at tau, with 1 on the far side of the ramp and 0 on the near side. The
    score is sum(2 gain x s - gain**2 s**2) = -|x - gain s|**2 + const, so the best is the largest.
    Only the ramp is summed sample by sample; the part where the envelope is 1 comes from
    ``v_cum``.
    """
    size = u.shape[0]
    out = np.empty(taus.shape[0])
    g2 = gain * gain
    # Along the ramp the raised cosine's angle is a0 +- i pi / ramp: with cos and sin of
    # i pi / ramp tabled once, each candidate's envelope is an angle sum with no chain from
    # sample to sample (the loop vectorises).
    step = math.pi / ramp if ramp > 0 else 0.0
    span = math.ceil(ramp) + 2  # at most ceil(ramp) + 1 samples lie on a ramp
    tab_c = np.empty(span)
    tab_s = np.empty(span)
    _phasor(0.0, step, tab_c, tab_s)
    for c in range(taus.shape[0]):
        tau = taus[c] - first
        if rising:
            lo = min(max(math.floor(tau) + 1, 0), size)
            hi = min(max(math.ceil(tau + ramp), lo), size)
            acc = v_cum[size] - v_cum[hi]
            angle = step * (lo - tau)  # grows along the ramp
            sign = 1.0
        else:
            lo = min(max(math.floor(tau - ramp) + 1, 0), size)
            hi = min(max(math.ceil(tau), lo), size)
            acc = v_cum[lo]
            angle = step * (tau - lo)  # shrinks along the ramp
            sign = -1.0
        cos_a = 0.5 * math.cos(angle)
        sin_a = 0.5 * sign * math.sin(angle)
        part = 0.0
        u_r = u[lo:hi]  # views indexed from 0: no negative-index check, so the loop vectorises
        s2_r = s2[lo:hi]
        for i in range(hi - lo):
            w = 0.5 - (cos_a * tab_c[i] - sin_a * tab_s[i])  # 0.5 - 0.5 cos(angle +- step i)
            part += (2.0 * gain * u_r[i] - g2 * s2_r[i] * w) * w
        out[c] = acc + part
    return out


# The oscillators below are exact (math.cos, math.sin) every _RESYNC samples; in between an angle
# sum with a table of the first _RESYNC steps, so no sample waits on the one before it.
_RESYNC = 256


@njit(cache=True, nogil=True, fastmath=True)
def _phasor(phase, omega, cos_out, sin_out):  # pragma: no cover - compiled
    """cos_out[i], sin_out[i] = cos, sin of ``phase + omega i``."""
    count = cos_out.shape[0]
    span = min(_RESYNC, count)
    tab_c = np.empty(span)
    tab_s = np.empty(span)
    step_c = math.cos(omega)
    step_s = math.sin(omega)
    c, s = 1.0, 0.0
    for r in range(span):  # a rotating phasor: its rounding stays ~1e-14 over _RESYNC steps
        tab_c[r] = c
        tab_s[r] = s
        c, s = c * step_c - s * step_s, s * step_c + c * step_s
    for j in range(0, count, _RESYNC):
        anchor = phase + omega * j
        ca = math.cos(anchor)
        sa = math.sin(anchor)
        cos_j = cos_out[j : j + _RESYNC]  # views indexed from 0: no negative-index check
        sin_j = sin_out[j : j + _RESYNC]
        for r in range(cos_j.shape[0]):
            cos_j[r] = ca * tab_c[r] - sa * tab_s[r]
            sin_j[r] = sa * tab_c[r] + ca * tab_s[r]


@njit(cache=True, nogil=True, fastmath=True)
def sine_sums(x, n0, omega):  # pragma: no cover - compiled
    """Sums for a least-squares sine fit over ``x`` (sample ``i`` at time ``n0 + i``).

    Returns (cc, cs, ss, xc, xs, xx) with c = cos(omega n), s = sin(omega n).
    """
    size = x.shape[0]
    cos_n = np.empty(size)
    sin_n = np.empty(size)
    _phasor(omega * n0, omega, cos_n, sin_n)
    cc = cs = ss = xc = xs = xx = 0.0
    for i in range(size):
        c = cos_n[i]
        s = sin_n[i]
        v = float(x[i])
        cc += c * c
        cs += c * s
        ss += s * s
        xc += v * c
        xs += v * s
        xx += v * v
    return cc, cs, ss, xc, xs, xx


@njit(cache=True, nogil=True, fastmath=True)
def hann_demod(x, n0, omega, length, hop):  # pragma: no cover - compiled
    """sum_i hann[i] x[m hop + i] exp(-j omega (n0 + m hop + i)) for every whole window m."""
    n_windows = (x.shape[0] - length) // hop + 1
    out = np.zeros(max(n_windows, 0), dtype=np.complex128)
    re = np.empty(x.shape[0])
    im = np.empty(x.shape[0])
    _phasor(omega * n0, omega, re, im)
    for i in range(x.shape[0]):
        v = float(x[i])
        re[i] = v * re[i]
        im[i] = -v * im[i]
    window = np.empty(length)  # Hann without its zero end points: 0.5 - 0.5 cos(2 pi (i+1)/(L+1))
    sines = np.empty(length)
    _phasor(2.0 * math.pi / (length + 1), 2.0 * math.pi / (length + 1), window, sines)
    for i in range(length):
        window[i] = 0.5 - 0.5 * window[i]
    for m in range(n_windows):
        acc_re = 0.0
        acc_im = 0.0
        re_m = re[m * hop : m * hop + length]  # views from 0: no negative-index check
        im_m = im[m * hop : m * hop + length]
        for i in range(length):
            acc_re += window[i] * re_m[i]
            acc_im += window[i] * im_m[i]
        out[m] = complex(acc_re, acc_im)
    return out


@njit(cache=True, nogil=True, fastmath=True)
def edge_terms(x, first, stop, omega, theta, gain):  # pragma: no cover - compiled
    """What ``edge_scores`` needs over samples [first, stop) of ``x``, in one pass.

    Returns (carrier, u, s2, v_cum): ``carrier[i] = sin(omega (first + i) - theta)``, ``u = x
    carrier``, ``s2 = carrier**2`` and ``v_cum`` the prefix sum (leading 0) of ``2 gain u -
    gain**2 s2``.
    """
    size = stop - first
    cos_n = np.empty(size)
    carrier = np.empty(size)
    _phasor(omega * first - theta, omega, cos_n, carrier)
    u = np.empty(size)
    s2 = np.empty(size)
    xr = x[first:stop]  # indexed from 0: no negative-index check
    for i in range(size):
        s = carrier[i]
        u[i] = float(xr[i]) * s
        s2[i] = s * s
    v_cum = np.empty(size + 1)
    v_cum[0] = 0.0
    g2 = gain * gain
    acc = 0.0
    for i in range(size):
        acc += 2.0 * gain * u[i] - g2 * s2[i]
        v_cum[i + 1] = acc
    return carrier, u, s2, v_cum


@njit(cache=True, nogil=True)
def _ramp_weight(t, ramp):  # pragma: no cover - compiled
    """Raised-cosine step: 0 for t <= 0, 1 from t >= ramp (a hard step when ramp is 0)."""
    if t <= 0.0:
        return 0.0
    if t >= ramp:
        return 1.0
    return 0.5 - 0.5 * math.cos(math.pi * t / ramp)


@njit(cache=True, nogil=True, fastmath=True)
def model_residual(x, first, carrier, onset, end, ramp, gain):  # pragma: no cover - compiled
    """``x[first + i]`` minus our burst (rising ramp at ``onset``, falling ramp ending at ``end``,
    ``inf`` for none; ``carrier`` from ``edge_terms``), and a bound on any tone in it.

    The bound: no Hann-windowed DTFT bin of the residual can exceed ``sum |r w|``, so no tone
    found in it can have an amplitude above ``2 sum |r w| / sum w`` (what ``_tone_outside``
    measures). Returns (residual, bound).
    """
    size = carrier.shape[0]
    out = np.empty(size)
    # np.hanning(size): 0.5 - 0.5 cos(2 pi i / (size - 1)), from a rotating phasor
    step = 2.0 * math.pi / (size - 1) if size > 1 else 0.0
    step_c = math.cos(step)
    step_s = math.sin(step)
    c = s = 0.0
    weighted = total = 0.0
    xr = x[first : first + size]  # indexed from 0: no negative-index check
    for i in range(size):
        if i % _RESYNC == 0:
            c = math.cos(step * i)
            s = math.sin(step * i)
        n = float(first + i)
        envelope = _ramp_weight(n - onset, ramp) * _ramp_weight(end - n, ramp)
        r = float(xr[i]) - gain * envelope * carrier[i]
        out[i] = r
        w = 0.5 - 0.5 * c if size > 1 else 1.0
        weighted += abs(r) * w
        total += w
        c, s = c * step_c - s * step_s, s * step_c + c * step_s
    return out, 2.0 * weighted / max(total, 1e-300)


@njit(cache=True, nogil=True)
def sliding_power(x, lo, hi, window, out):  # pragma: no cover - compiled
    """out[i] = mean square of ``x`` over the ``window`` samples centred on sample ``lo + i``.

    The window is [c - window // 2, c - window // 2 + window); samples outside ``x`` count as 0.
    A running sum, so each of the ``hi - lo`` outputs costs O(1).
    """
    half = window // 2
    n = x.shape[0]
    acc = 0.0
    first = lo - half
    for j in range(first, first + window):
        if 0 <= j < n:
            v = float(x[j])
            acc += v * v
    for i in range(hi - lo):
        out[i] = acc / window
        leave = first + i
        enter = leave + window
        if 0 <= leave < n:
            v = float(x[leave])
            acc -= v * v
        if 0 <= enter < n:
            v = float(x[enter])
            acc += v * v
        if acc < 0.0:  # rounding after many subtractions
            acc = 0.0


@njit(cache=True, nogil=True)
def first_crossing(env, level, rising):  # pragma: no cover - compiled
    """Where ``env`` first crosses ``level`` (upwards if ``rising``, else downwards), as a
    fractional index linearly interpolated between the two samples around it; -1.0 if never."""
    for i in range(1, env.shape[0]):
        a, b = env[i - 1], env[i]
        if (rising and a < level <= b) or (not rising and a >= level > b):
            return (i - 1) + (level - a) / (b - a)
    return -1.0
