"""The speech recognizer of examples/voice_agent.py, in a process of its own: PocketSphinx's
English acoustic model with a language model built from the sentences the agent expects.

A process of its own because pocketsphinx holds the GIL for a whole decode (1-2 s on its
built-in model): in the agent's process that stalls the VAD and the audio. It needs only
``pocketsphinx`` (which ships the acoustic model and the CMU dictionary) and the standard
library, and downloads nothing::

    python examples/voice_stt.py [CORPUS]

CORPUS is a text file of the sentences to expect, one a line (default: ``SENTENCES``). Its
words make the dictionary (the full CMU dictionary takes about 4 s to load, this one about
10 ms) and an ARPA trigram model (``pocketsphinx.lm.ArpaBoLM``): a narrow agent's domain model,
which recognises eSpeak's voice far better than the built-in general one.

The protocol, on stdin and stdout: once loaded, this process writes ``ready``; then, for each
4-byte little-endian length and that many bytes of 16 kHz mono int16 PCM (one utterance), it
writes one line, the words it recognised (empty when none). It exits at the end of its input.
"""

from __future__ import annotations

import re
import signal
import struct
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SAMPLE_RATE = 16_000
READY = "ready"
LENGTH = struct.Struct("<I")

# What a caller says to a support line in the tests and the README's examples.
SENTENCES = (
    "hello",
    "hello i would like to check my order status",
    "i want to cancel my subscription",
    "can you help me with my bill",
    "my package has not arrived yet",
    "what are your opening hours",
    "i need to change my delivery address",
    "how much does the premium plan cost",
    "please transfer me to a human agent",
    "i forgot my password",
    "where is my refund",
    "the app keeps crashing on my phone",
    "yes that is correct",
    "no that is wrong",
    "thank you very much goodbye",
)

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def sentences_of(corpus: Path | None) -> list[str]:
    """The expected sentences, lowercased and reduced to words: the file's lines, or
    SENTENCES."""
    lines: Iterable[str] = SENTENCES
    if corpus is not None:
        lines = corpus.read_text(encoding="utf-8").splitlines()
    out = [" ".join(_WORD.findall(line.lower())) for line in lines]
    return [s for s in out if s]


def build_models(sentences: list[str], where: Path) -> tuple[Path, Path]:
    """Write the language model and the dictionary of `sentences` into `where`; SystemExit
    naming the words the CMU dictionary does not know."""
    from pocketsphinx import get_model_path
    from pocketsphinx.lm import ArpaBoLM

    wanted = {w for s in sentences for w in s.split()}
    entries = []
    known = set()
    full = Path(get_model_path("en-us/cmudict-en-us.dict"))
    for line in full.read_text(encoding="utf-8").splitlines():
        word = line.split(" ", 1)[0]
        base = word.split("(", 1)[0]  # "read(2)": another pronunciation of "read"
        if base in wanted:
            entries.append(line)
            known.add(base)
    if unknown := sorted(wanted - known):
        raise SystemExit(
            f"voice_stt: the corpus has words the CMU dictionary does not know: "
            f"{', '.join(unknown)}; expected words it spells out"
        )
    dictionary = where / "corpus.dict"
    dictionary.write_text("\n".join(entries) + "\n", encoding="utf-8")
    lm = ArpaBoLM(text="\n".join(sentences), add_start=True)
    lm.compute()
    model = where / "corpus.lm"
    with model.open("w", encoding="utf-8") as f:
        lm.write(f)
    return model, dictionary


def decode(decoder: Any, pcm: bytes) -> str:
    """The words recognised in one utterance of 16 kHz int16 PCM (a pocketsphinx Decoder)."""
    decoder.start_utt()
    decoder.process_raw(pcm, False, True)  # a whole utterance: its own cepstral mean
    decoder.end_utt()
    hyp = decoder.hyp()
    return "" if hyp is None else str(hyp.hypstr).strip()


def main(argv: list[str]) -> int:
    from pocketsphinx import Decoder

    # Ctrl-C or a worker's SIGINT reaches its whole process group: this process ends with its
    # input instead, once the agent's process that feeds it is gone
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    corpus = Path(argv[0]) if argv else None
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    with tempfile.TemporaryDirectory(prefix="voice-stt-") as tmp:
        model, dictionary = build_models(sentences_of(corpus), Path(tmp))
        decoder = Decoder(
            lm=str(model), dict=str(dictionary), samprate=SAMPLE_RATE, loglevel="FATAL"
        )
    stdout.write(f"{READY}\n".encode())
    stdout.flush()
    while head := stdin.read(LENGTH.size):
        if len(head) < LENGTH.size:
            break
        (size,) = LENGTH.unpack(head)
        pcm = stdin.read(size)
        if len(pcm) < size:
            break
        text = decode(decoder, pcm).replace("\n", " ")
        stdout.write(text.encode("utf-8") + b"\n")
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
