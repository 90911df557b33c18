"""`python -m pipeline` in a subprocess: exit codes, one-sentence errors, interrupts, no secrets."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sys
import time
import wave
from pathlib import Path

import pytest

from pipeline.recording.wav import HEADER_BYTES as WAV_HEADER
from tests.conftest import scaled
from tests.pipeline.conftest import (
    REPO,
    LiveServer,
    cli_env,
    free_port,
    run_cli,
    start_cli,
    wait_talking,
    write_config,
)

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_ROW = re.compile(r"^(customer -> support|support -> customer)" + r"\s+([\d.]+)" * 6 + r"$", re.M)


def _one_error(stderr: str) -> str:
    """The CLI's error: exactly one `error: ...` line, and no traceback anywhere."""
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def _wav_samples(path: Path) -> int:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 48000)
        return w.getnframes()


async def test_run_prints_statistics_that_match_the_evidence(
    server: LiveServer, tmp_path: Path
) -> None:
    """A verified run exits 0; its table matches the files; no secret or token leaks anywhere."""
    out = tmp_path / "recordings"
    config = write_config(
        tmp_path / "config.json",
        server.url,
        server.api_key,
        server.api_secret,
        signing_key=str(tmp_path / "signing-key.pem"),
        # Passed through to verify; generous, as other jobs may load this machine.
        thresholds={"max_latency_median_ms": 1500, "max_latency_p95_ms": 2500},
    )
    done = await run_cli(
        "--config", str(config), "--duration", "6", "--out", str(out), limit_s=scaled(90)
    )
    assert done.code == 0, done.stdout + done.stderr
    (run,) = out.iterdir()
    assert f"OK: {run}" in done.stdout
    # the signer's key id closes the run, short enough for 80 columns
    key_id = json.loads((run / "report.json").read_bytes())["key_id"]
    assert re.search(rf"^signed by key {key_id[:16]}, (un)?trusted \(", done.stdout, re.M)
    assert f"page: {run / 'report.html'}\n" in done.stdout
    assert "customer" in done.stderr and "access_token=<redacted>" in done.stderr
    # Not a terminal: the live view is a log line every few seconds, both directions, tone heard.
    assert re.search(
        r"C->S sent \d+ fr/[\d.]+ MB heard \d+ fr/[\d.]+ MB bursts \d+/\d+ lost \d+ 440 Hz",
        done.stderr,
    )
    assert re.search(
        r"S->C sent \d+ fr/[\d.]+ MB heard \d+ fr/[\d.]+ MB bursts \d+/\d+ lost \d+ 550 Hz",
        done.stderr,
    )
    rows = {m[0]: [float(x) for x in m[1:]] for m in _ROW.findall(done.stdout)}
    assert set(rows) == {"customer -> support", "support -> customer"}
    for name, (f_sent, b_sent, f_recv, b_recv, bursts, heard) in rows.items():
        sender, receiver = name.split(" -> ")
        sent_rows = (run / f"{sender}.sent.csv").read_text().splitlines()[1:]
        arrivals = (run / f"{receiver}-from-{sender}.arrivals.csv").read_text().splitlines()[1:]
        burst_rows = (run / f"{sender}.bursts.csv").read_text().splitlines()[1:]
        assert f_sent == len(sent_rows) == 600 and b_sent == 960 * f_sent
        assert f_recv == len(arrivals)
        assert b_recv == 2 * _wav_samples(run / f"{receiver}-from-{sender}.wav")
        assert bursts == len(burst_rows) == 5
        assert abs(heard - 0.3 * bursts) < 0.2
    total = re.search(r"total PCM bytes: (\d+)", done.stdout)
    assert total and int(total[1]) == sum(r[1] + r[3] for r in rows.values())
    report = json.loads((run / "report.json").read_text())
    assert report["run_id"] == run.name
    # The proof table shows the signed report's own figures.
    for d in report["directions"]:
        row = re.search(
            rf"^{d['from']} -> {d['to']}\s+(\d+)/(\d+)\s+(\d+).*?([\d.]+)\s+([\d.]+)\s+([\d.]+)$",
            done.stdout,
            re.M,
        )
        assert row, done.stdout
        assert (int(row[1]), int(row[2]), int(row[3])) == (
            d["bursts_detected"],
            d["bursts_sent"],
            d["bursts_lost"],
        )
        assert float(row[4]) == round(d["latency_ms"]["median"], 1)
    assert report["thresholds"]["max_latency_p95_ms"] == 2500
    assert (tmp_path / "signing-key.pem").exists()

    # No secret, and no token, in the output or in any file of the run.
    texts = [done.stdout, done.stderr] + [p.read_bytes().decode("latin-1") for p in run.iterdir()]
    for text in texts:
        assert server.api_secret not in text
        assert not _JWT.search(text)


@pytest.mark.parametrize(
    ("sig", "name"), [(signal.SIGINT, "SIGINT (Ctrl-C)"), (signal.SIGTERM, "SIGTERM")]
)
async def test_interrupt_closes_the_evidence_and_exits_130(
    tmp_path: Path, sig: signal.Signals, name: str
) -> None:
    """Ctrl-C or SIGTERM mid-run (on an embedded server the CLI started itself): exit 130, valid
    WAVs, manifest interrupted with its reason, and the report still written."""
    port = free_port()
    config = write_config(
        tmp_path / "config.json",
        f"ws://127.0.0.1:{port}",
        "devkey",
        "secret",
        signing_key=str(tmp_path / "signing-key.pem"),
    )
    out = tmp_path / "recordings"
    proc = await start_cli("--config", str(config), "--duration", "60", "--out", str(out))
    assert proc.stderr is not None and proc.stdout is not None
    stderr = await wait_talking(proc)
    await asyncio.sleep(2.5)  # talking starts 0.2 s after the log line; leave margin for load
    sent_at = time.monotonic()
    proc.send_signal(sig)
    rest_out, rest_err = await asyncio.wait_for(proc.communicate(), scaled(60))
    stderr += rest_err
    assert proc.returncode == 130, stderr.decode()
    assert time.monotonic() - sent_at < scaled(30)
    assert b"embedded server" in stderr
    assert b"Traceback" not in stderr
    (run,) = out.iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["reason"] == f"interrupted by {name}."
    assert manifest["embedded_server"] is True
    for wav in ("support-from-customer.wav", "customer-from-support.wav"):
        samples = _wav_samples(run / wav)
        assert samples > 48000  # more than a second was recorded before the interrupt
        assert (run / wav).stat().st_size == WAV_HEADER + 2 * samples
    assert (run / "report.json").exists()
    assert f"run {run.name}: interrupted" in rest_out.decode()


_LK = '"livekit": {"url": "ws://127.0.0.1:7880", "api_key": "k", "api_secret": "s"}'


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        (None, (), "does not exist; pass --config PATH."),
        (
            '{"livekit": {"url": "ws://h:1"\n  "api_key": 1}}',
            (),
            "not valid JSON: Expecting ',' delimiter at line 2, column 3.",
        ),
        ('{"duration_s": 5}', (), "has no 'livekit' block"),
        ("{" + _LK + ', "pairs": "two"}', (), "'pairs' is 'two' (a string); expected an integer."),
        (
            '{"livekit": {"url": "127.0.0.1:7880", "api_key": "k", "api_secret": "s"}}',
            (),
            "expected a ws://, wss://, http:// or https:// URL",
        ),
        (
            "{" + _LK + "}",
            ("--duration", "-3"),
            "--duration is -3; expected seconds in (0, 86400].",
        ),
        (
            "{" + _LK + ', "thresholds": {"max_latency_ms": 100}}',
            (),
            "unknown threshold 'max_latency_ms'; expected one of",
        ),
        (
            "{" + _LK + ', "impairment": {"loss_pct": 120}}',
            (),
            "'impairment.loss_pct' is 120 (a number); expected percent from 0 to 100.",
        ),
    ],
)
async def test_bad_input_exits_2_with_one_sentence(
    tmp_path: Path, content: str | None, args: tuple[str, ...], expected: str
) -> None:
    """Config and option mistakes: exit 2, one `error:` sentence naming what to fix."""
    config = tmp_path / "config.json"
    if content is not None:
        config.write_text(content)
    done = await run_cli(
        "--config", str(config), "--out", str(tmp_path / "r"), *args, limit_s=scaled(30)
    )
    assert done.code == 2, done.stderr
    assert expected in _one_error(done.stderr)
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


async def test_unreachable_server_exits_3(tmp_path: Path) -> None:
    """A server address where nothing listens (not loopback, so nothing is started): exit 3."""
    port = free_port()
    config = write_config(
        tmp_path / "c.json", f"ws://192.0.2.2:{port}", "k", "s", connect_timeout_s=3
    )
    started = time.monotonic()
    done = await run_cli("--config", str(config), "--out", str(tmp_path / "r"), limit_s=scaled(30))
    assert done.code == 3, done.stderr
    assert "could not reach the LiveKit server at http://192.0.2.2" in _one_error(done.stderr)
    assert time.monotonic() - started < scaled(15)


async def test_silent_server_exits_3_within_the_connect_timeout(tmp_path: Path) -> None:
    """A port that accepts connections but never answers: exit 3 once connect_timeout_s is up."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"ws://127.0.0.1:{listener.getsockname()[1]}"
        config = write_config(tmp_path / "c.json", url, "k", "s", connect_timeout_s=2)
        started = time.monotonic()
        done = await run_cli(
            "--config", str(config), "--out", str(tmp_path / "r"), limit_s=scaled(30)
        )
    assert done.code == 3, done.stderr
    assert "did not answer within 2 s" in _one_error(done.stderr)
    assert time.monotonic() - started < scaled(12)


async def test_refused_credentials_exit_3(server: LiveServer, tmp_path: Path) -> None:
    """A secret the server does not accept: exit 3 naming the fields to fix, secret not shown."""
    wrong = "not-the-secret-" + "x" * 20
    config = write_config(tmp_path / "c.json", server.url, server.api_key, wrong)
    done = await run_cli("--config", str(config), "--out", str(tmp_path / "r"), limit_s=scaled(30))
    assert done.code == 3, done.stderr
    error = _one_error(done.stderr)
    assert "refused the API key and secret" in error and "livekit.api_secret" in error
    assert wrong not in done.stdout + done.stderr


async def test_killed_server_fails_the_run_with_exit_3(tmp_path: Path) -> None:
    """The server process dies mid-run (SIGKILL): the run stops, its WAVs stay valid, the manifest
    and the report say failed and why, and the CLI exits 3 soon after."""
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "echoproof.sfu",
        "--port",
        str(port),
        cwd=REPO,
        env=cli_env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _wait_listening(port, scaled(30))
        config = write_config(
            tmp_path / "c.json",
            f"ws://127.0.0.1:{port}",
            "devkey",
            "secret",
            connect_timeout_s=3,
            signing_key=str(tmp_path / "signing-key.pem"),
        )
        out = tmp_path / "recordings"
        proc = await start_cli("--config", str(config), "--duration", "60", "--out", str(out))
        assert proc.stderr is not None
        stderr = await wait_talking(proc)
        await asyncio.sleep(1.0)
        server.kill()
        killed_at = time.monotonic()
        stdout, rest = await asyncio.wait_for(proc.communicate(), scaled(60))
    finally:
        if server.returncode is None:
            server.kill()
        await server.wait()
    assert proc.returncode == 3, (stderr + rest).decode()
    assert time.monotonic() - killed_at < scaled(20)
    assert b"Traceback" not in rest
    (run,) = out.iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert "lost the server" in manifest["reason"]
    assert f"reason: {manifest['reason']}" in stdout.decode()
    assert f"error: run {run.name} failed: {manifest['reason']}" in rest.decode()
    for wav in ("support-from-customer.wav", "customer-from-support.wav"):
        samples = _wav_samples(run / wav)
        assert samples > 48000
        assert (run / wav).stat().st_size == WAV_HEADER + 2 * samples
    report = json.loads((run / "report.json").read_text())
    assert (report["status"], report["reason"]) == ("failed", manifest["reason"])
    assert report["verdict"]["passed"] is False


async def _wait_listening(port: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not await _listening(port):
        assert time.monotonic() < deadline, f"nothing listens on port {port}"
        await asyncio.sleep(0.1)


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


def test_a_bug_exits_70_with_one_line_and_a_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unexpected exception is not a connection problem: exit 70, one line naming it and the
    log file that holds its traceback (redacted), no traceback on the console."""
    import pipeline.__main__ as cli

    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"a bug with {token} in it")

    monkeypatch.setattr(cli, "capture", broken)
    config = tmp_path / "config.json"
    config.write_text('{"livekit": {"url": "ws://127.0.0.1:1", "api_key": "k", "api_secret": "s"}}')
    assert cli.main(["--config", str(config), "--out", str(tmp_path / "r")]) == cli.EXIT_BUG == 70
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if x.startswith("error: ")]
    assert "RuntimeError" in line and "a bug in echoproof" in line and token not in line
    log = Path(re.search(r"the traceback is in (\S+)\.$", line).group(1))  # type: ignore[union-attr]
    text = log.read_text()
    assert "Traceback" in text and "RuntimeError" in text and token not in text
    assert "Traceback" not in err
    log.unlink()
