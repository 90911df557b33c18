"""The helper process of `pipeline.recording.freeze`: stop a process tree at a monotonic instant,
resume it
after a while. Run as a script (`python _freezer.py ROOT_PID AT_NS DURATION_S`); it imports only
the standard library, so that it is ready long before its instant."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path


def _tree(root: int) -> list[int]:
    """`root` and every process under it, from /proc."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return out


def freeze(root: int, at_ns: int, duration_s: float) -> None:
    """Sleep until `at_ns` (SIGUSR1 before then: give up), then stop `root`'s tree for
    `duration_s`; SIGINT and SIGTERM are ignored meanwhile, and the tree is always resumed."""
    signal.signal(signal.SIGUSR1, lambda *_: sys.exit(0))
    time.sleep(max(0.0, (at_ns - time.monotonic_ns()) / 1e9))
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
    stopped = [p for p in _tree(root) if p != os.getpid()]
    try:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        time.sleep(duration_s)
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


if __name__ == "__main__":
    freeze(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
