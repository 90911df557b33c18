"""dsp benchmark: Goertzel throughput against a numpy baseline, JIT compile time, onset precision.

``python -m benchmarks.dsp [--quick]``. Figures:

- ``goertzel.<dur>.k<K>``: x real time on one core for ``dsp.goertzel_power`` (numba) and for a
  plain numpy Goertzel vectorised over blocks and frequencies, same input, same process, medians
  over repeats; ``ratio`` = numba / numpy. Input: int16 noise, 480-sample blocks.
- ``jit``: a subprocess with a fresh ``NUMBA_CACHE_DIR`` (cold: compiles every kernel) and again
  with that cache warm: seconds for ``import dsp`` and for the first calls.
- ``onset.<snr>.<codec>.f<freq>``: onset error of ``detect_bursts`` (with the nominal duration,
  as the verify stage knows it) over random fractional positions in white noise (full band):
  mean, std and max |error - mean| in microseconds; the mean through Opus is the codec's constant
  delay. ``slips`` counts errors more than half a period from the mean; ``slips_no_hint`` the
  same without the duration.
- ``detect_1h`` (quick: 10 min): ``detect_bursts`` over a long recording (a 0.3 s burst of each
  tone every second, 440 Hz then 550 Hz 0.4 s later, noise 40 dB below the tones' peak), as
  the verify stage runs it: int16, with the nominal duration, one call per tone. Seconds
  (median over repeats) per tone and its x real time; ``over_goertzel``: that time over the time
  of ``goertzel_power`` of both tones over the same input in the same process (one pass over the
  samples: the floor any detection pays), so load on the machine cancels out.
- ``analysis_120s``: wall seconds of a warm-cache subprocess that imports dsp, reads a 120 s
  WAV and finds every burst of both tones (plus the Goertzel power of both per 10 ms block);
  ``import_s`` and ``analysis_s`` split it (the first numba call, which sets up numba's
  compiler context even with a warm cache, counts in ``analysis_s``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

import dsp

ROOT = Path(__file__).resolve().parent.parent
RATE = dsp.SAMPLE_RATE
BLOCK = 480


def numpy_goertzel(x: np.ndarray, rate: float, freqs: np.ndarray, block: int) -> np.ndarray:
    """The baseline: the same recursion, vectorised with numpy over (blocks, K), 60 s at a time."""
    coeffs = 2 * np.cos(2 * np.pi * freqs / rate)
    n_blocks = x.shape[0] // block
    out = np.empty((n_blocks, freqs.shape[0]))
    step = 6000  # blocks per chunk: bounded memory, like the numba path
    for first in range(0, n_blocks, step):
        nb = min(step, n_blocks - first)
        xb = x[first * block : (first + nb) * block].reshape(nb, block).astype(np.float64)
        s0 = np.empty((nb, freqs.shape[0]))
        s1 = np.zeros_like(s0)
        s2 = np.zeros_like(s0)
        for n in range(block):
            np.multiply(s1, coeffs, out=s0)
            s0 -= s2
            s0 += xb[:, n : n + 1]
            s0, s1, s2 = s2, s0, s1
        out[first : first + nb] = s1 * s1 + s2 * s2 - coeffs * s1 * s2
    return out


def _median_times(fns: list, repeats: int) -> list[float]:
    """Median wall time of each function; repeats interleaved so machine noise hits all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, spent in zip(fns, times, strict=True):
            started = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - started)
    return [statistics.median(spent) for spent in times]


def _throughput(quick: bool) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    results: dict[str, Any] = {}
    durations = [60] if quick else [60, 3600]
    for seconds in durations:
        x = (rng.standard_normal(seconds * RATE) * 3000).astype(np.int16)
        for k in (2, 8, 32):
            freqs = np.linspace(300.0, 3400.0, k)
            fast = dsp.goertzel_power(x, RATE, freqs, BLOCK)
            base = numpy_goertzel(x, RATE, freqs, BLOCK)
            np.testing.assert_allclose(fast, base, rtol=1e-8, atol=1e-3 * BLOCK)
            repeats = 7 if seconds <= 60 else 3
            t_fast, t_base = _median_times(
                [
                    lambda: dsp.goertzel_power(x, RATE, freqs, BLOCK),  # noqa: B023
                    lambda: numpy_goertzel(x, RATE, freqs, BLOCK),  # noqa: B023
                ],
                repeats,
            )
            results[f"{seconds}s.k{k}"] = {
                "numba_xrt": round(seconds / t_fast),
                "numpy_xrt": round(seconds / t_base),
                "ratio": round(t_base / t_fast, 2),
            }
    return results


_JIT_PROBE = """
import time
started = time.perf_counter()
import numpy as np
import dsp
imported = time.perf_counter()
x = dsp.burst(440.0, 0.3)
y = np.concatenate([np.zeros(3000, np.int16), x, np.zeros(3000, np.int16)])
dsp.detect_bursts(y, 48000, 440.0, duration_s=0.3)
dsp.detect_bursts(y / 32768.0, 48000, 440.0)
dsp.goertzel_power(y, 48000, [440.0, 550.0])
dsp.GoertzelStream(48000, [440.0]).process(y[:480])
dsp.ToneGenerator(440.0).frame()
done = time.perf_counter()
print(imported - started, done - imported)
"""


def _subprocess(code: str, cache_dir: str, *args: str) -> tuple[float, str]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return time.perf_counter() - started, done.stdout


def _jit() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="echoproof-numba-") as cache:
        cold_wall, out = _subprocess(_JIT_PROBE, cache)
        cold_import, cold_calls = (float(v) for v in out.split())
        warm = [_subprocess(_JIT_PROBE, cache) for _ in range(3)]
        warm_calls = statistics.median(float(out.split()[1]) for _, out in warm)
        warm_import = statistics.median(float(out.split()[0]) for _, out in warm)
        return {
            "cold_import_s": round(cold_import, 3),
            "cold_first_calls_s": round(cold_calls, 3),
            "cold_wall_s": round(cold_wall, 3),
            "warm_import_s": round(warm_import, 3),
            "warm_first_calls_s": round(warm_calls, 4),
            "warm_wall_s": round(statistics.median(w for w, _ in warm), 3),
        }


def _noisy(freq: float, snr_db: float | None, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Half a second with one 0.3 s burst at a random fractional position; its true onset."""
    start, offset = int(rng.integers(2000, 4000)), float(rng.uniform(0, 1))
    wave_ = dsp.burst(freq, 0.3, offset=offset).astype(np.float64)
    x = np.zeros(RATE // 2)
    x[start : start + wave_.shape[0]] += wave_
    if snr_db is not None:
        x += rng.standard_normal(x.shape[0]) * np.sqrt((0.5 * 32767) ** 2 / 2 / 10 ** (snr_db / 10))
    return np.clip(np.round(x), -32768, 32767).astype(np.int16), start + offset


def _summary(errors: list[float], errors_no_hint: list[float], freq: float) -> dict[str, Any]:
    e = np.asarray(errors)
    mean = float(np.mean(e))
    dev = np.abs(e - mean)
    half_period = RATE / freq / 2
    slips = int(np.sum(dev > half_period))
    slips_no_hint = int(np.sum(np.abs(np.asarray(errors_no_hint) - mean) > half_period))
    us = 1e6 / RATE
    return {
        "mean_us": round(mean * us, 2),
        "std_us": round(float(np.std(e)) * us, 3),
        "max_dev_us": round(float(dev.max()) * us, 2),
        "slips": slips,
        "slips_no_hint": slips_no_hint,
        "missed": 0,
    }


def _onsets(quick: bool) -> dict[str, Any]:
    from benchmarks._opus import opus_round_trip

    trials = 30 if quick else 100
    results: dict[str, Any] = {}
    for snr in (20, 0):
        for codec in ("pcm", "opus"):
            for freq in (440.0, 550.0):
                rng = np.random.default_rng(int(freq) + snr)
                errors, errors_no_hint, missed = [], [], 0
                for _ in range(trials):
                    x, true = _noisy(freq, snr, rng)
                    if codec == "opus":
                        x = opus_round_trip(x)
                    hinted = dsp.detect_bursts(x, RATE, freq, duration_s=0.3)
                    plain = dsp.detect_bursts(x, RATE, freq)
                    if len(hinted) != 1 or len(plain) != 1:
                        missed += 1
                        continue
                    errors.append(hinted[0].onset - true)
                    errors_no_hint.append(plain[0].onset - true)
                summary = _summary(errors, errors_no_hint, freq)
                summary["missed"] = missed
                results[f"snr{snr}db.{codec}.f{int(freq)}"] = summary
    return results


def _long_recording(seconds: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """int16 at 48 kHz: a 0.3 s burst of each tone per second, in noise; and bursts per tone."""
    x = np.empty(seconds * RATE, dtype=np.int16)
    chunk = 60  # seconds synthesised at a time: bounded float64 scratch
    for first in range(0, seconds, chunk):
        n = min(chunk, seconds - first)
        part = rng.standard_normal(n * RATE) * 160.0
        for s in range(n):
            for freq, at in ((440.0, 0.2), (550.0, 0.6)):
                wave_ = dsp.burst(freq, 0.3, offset=float(rng.uniform(0, 1)))
                start = int((s + at) * RATE)
                part[start : start + wave_.shape[0]] += wave_
        x[first * RATE : (first + n) * RATE] = np.clip(np.round(part), -32768, 32767)
    return x, seconds


def _detect_long(quick: bool) -> dict[str, Any]:
    seconds = 600 if quick else 3600
    x, expected = _long_recording(seconds, np.random.default_rng(3))
    counts = [len(dsp.detect_bursts(x, RATE, f, duration_s=0.3)) for f in (440.0, 550.0)]
    t_detect, t_goertzel = _median_times(
        [
            lambda: dsp.detect_bursts(x, RATE, 440.0, duration_s=0.3),
            lambda: dsp.goertzel_power(x, RATE, [440.0, 550.0], BLOCK),
        ],
        3,
    )
    return {
        "seconds": seconds,
        "per_tone_s": round(t_detect, 3),
        "xrt": round(seconds / t_detect),
        "over_goertzel": round(t_detect / t_goertzel, 2),
        "bursts_per_tone": expected,
        "found": counts,
    }


_ANALYSIS_PROBE = """
import time
started = time.perf_counter()
import sys, wave
import numpy as np
import dsp
imported = time.perf_counter()
with wave.open(sys.argv[1], "rb") as f:
    x = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
customer = dsp.detect_bursts(x, 48000, 440.0, duration_s=0.3)
support = dsp.detect_bursts(x, 48000, 550.0, duration_s=0.3)
power = dsp.goertzel_power(x, 48000, [440.0, 550.0])
print(len(customer), len(support), imported - started, time.perf_counter() - imported)
"""


def _analysis() -> dict[str, Any]:
    rng = np.random.default_rng(1)
    x = np.zeros(120 * RATE)
    n_bursts = 0
    for i, start in enumerate(range(2000, x.shape[0] - RATE, int(0.6 * RATE))):
        burst = dsp.burst(440.0 if i % 2 == 0 else 550.0, 0.3, offset=float(rng.uniform(0, 1)))
        x[start : start + burst.shape[0]] += burst
        n_bursts += 1
    x += rng.standard_normal(x.shape[0]) * 1000
    pcm = np.clip(np.round(x), -32768, 32767).astype("<i2")
    with tempfile.TemporaryDirectory(prefix="echoproof-bench-") as tmp:
        path = Path(tmp) / "recording.wav"
        with wave.open(str(path), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(RATE)
            f.writeframes(pcm.tobytes())
        cache = str(Path(tmp) / "numba")
        _subprocess(_ANALYSIS_PROBE, cache, str(path))  # fills the cache
        runs = [_subprocess(_ANALYSIS_PROBE, cache, str(path)) for _ in range(3)]
    found = sum(int(v) for v in runs[0][1].split()[:2])
    return {
        "wall_s": round(statistics.median(w for w, _ in runs), 3),
        "import_s": round(statistics.median(float(out.split()[2]) for _, out in runs), 3),
        "analysis_s": round(statistics.median(float(out.split()[3]) for _, out in runs), 3),
        "bursts_sent": n_bursts,
        "bursts_found": found,
    }


def run(quick: bool = False) -> dict:
    """Every dsp figure (see the module docstring); prints a table."""
    results: dict[str, Any] = {
        "goertzel": _throughput(quick),
        "jit": _jit(),
        "onset": _onsets(quick),
        "detect_1h": _detect_long(quick),
        "analysis_120s": _analysis(),
    }
    _print(results)
    return results


def _print(results: dict[str, Any]) -> None:
    print(f"{'goertzel':<14}{'numba xRT':>12}{'numpy xRT':>12}{'ratio':>8}")
    for key, row in results["goertzel"].items():
        print(f"{key:<14}{row['numba_xrt']:>12}{row['numpy_xrt']:>12}{row['ratio']:>8}")
    print(
        f"\n{'onset':<24}{'mean us':>10}{'std us':>9}{'max dev us':>12}{'slips':>7}{'no hint':>9}"
    )
    for key, row in results["onset"].items():
        print(
            f"{key:<24}{row['mean_us']:>10}{row['std_us']:>9}{row['max_dev_us']:>12}"
            f"{row['slips']:>7}{row['slips_no_hint']:>9}"
        )
    print("\ndetect_bursts, long recording:", json.dumps(results["detect_1h"]))
    print("jit:", json.dumps(results["jit"]))
    print("analysis of 120 s:", json.dumps(results["analysis_120s"]))


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:])
