"""What the top of a run's page says: the verdict banner and the headline cards.

The banner: PASSED, FAILED or INCONCLUSIVE, the one-line reason, the signature's status and the
signer's key id. The cards, per direction of a tone run: mouth-to-ear median and p95, bursts
lost, the longest gap and the MOS; for an agent under test: the greeting, the response's median
and p95, unanswered turns, the slowest barge-in stop and the word error rate. Each card names
the threshold it is judged against (`verify.thresholds`) and where its value is in `report.json`
(`path`), so that a reader (and the browser test) can hold one against the other.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from verify import attestation, signing, trust
from verify import evidence as ev
from verify.errors import VerifyError
from verify.thresholds import AgentThresholds, Thresholds

STATUS_WORDS = {"passed": "PASSED", "failed": "FAILED", "inconclusive": "INCONCLUSIVE"}


@dataclasses.dataclass(frozen=True)
class Signature:
    """What the page says of the report's signature: `status` and the signer's `key_id`."""

    status: str  # verified, or why not
    key_id: str
    standing: str = ""  # whether the key is trusted where the page was written (verify.trust)


def signature(run_dir: Path) -> Signature:
    """The signature of `run_dir`'s report: whether the DSSE envelope verifies with the signer's
    key in the folder and signs `report.json`, and whether that key is trusted where the page is
    written (its trusted-keys folder, `verify.trust`; a reader pins it with `--key`)."""
    try:
        key = signing.load_public_key((run_dir / ev.SIGNER_KEY).read_bytes(), ev.SIGNER_KEY)
        key_id = signing.key_id(key)
        envelope = ev.read_json(run_dir / ev.ENVELOPE)
        signed = attestation.read(*signing.open_envelope(envelope, key, attestation.FORMATS))
        same = signed.report == (run_dir / ev.REPORT).read_bytes()
    except OSError as exc:
        return Signature(f"not checked: {Path(exc.filename or '').name} cannot be read", "")
    except VerifyError as exc:
        return Signature(f"does not verify: {exc}", "")
    if not same:
        return Signature(f"does not verify: {ev.REPORT} changed", key_id)
    return Signature("verified", key_id, trust.standing(key_id))


@dataclasses.dataclass(frozen=True)
class Banner:
    """The verdict in one line."""

    status: str  # passed, failed, inconclusive
    word: str  # PASSED, FAILED, INCONCLUSIVE
    reason: str
    signature: Signature


def banner(report: dict[str, Any], sig: Signature) -> Banner:
    """The report's verdict as the banner states it."""
    v = report["verdict"]
    if v["status"] == "inconclusive":
        reason = str(v["reason"])
    elif v["failures"]:
        more = len(v["failures"]) - 1
        reason = v["failures"][0] + (f" (and {more} more, below)" if more else "")
    else:
        reason = "every figure is within its threshold"
    return Banner(v["status"], STATUS_WORDS[v["status"]], reason, sig)


@dataclasses.dataclass(frozen=True)
class Card:
    """One headline figure: its value, where it is in `report.json`, and its threshold."""

    label: str
    value: float | int | None
    unit: str
    path: str  # e.g. directions[0].latency_ms.median
    threshold: str | None  # its name in `thresholds`, None when the figure has none
    bound: str | None  # "max" or "min"
    limit: float | int | None

    @property
    def ok(self) -> bool | None:
        """Within its threshold; None without a value or a threshold."""
        if self.value is None or self.limit is None:
            return None
        return self.value <= self.limit if self.bound == "max" else self.value >= self.limit


@dataclasses.dataclass(frozen=True)
class CardGroup:
    """The cards of one direction, or of the conversation with an agent under test."""

    title: str
    cards: list[Card]


def cards(report: dict[str, Any]) -> list[CardGroup]:
    """The headline cards: one group per tone direction, or one for the conversation."""
    groups = []
    limits = Thresholds.from_dict(report["thresholds"])
    for i, d in enumerate(report["directions"]):
        at = f"directions[{i}]"

        def card(label: str, key: str, unit: str, threshold: str, d: dict[str, Any] = d,
                 at: str = at) -> Card:  # fmt: skip
            return _card(label, d, key, unit, f"{at}.{key}", threshold, limits)

        found = [
            card("mouth-to-ear median", "latency_ms.median", "ms", "max_latency_median_ms"),
            card("mouth-to-ear p95", "latency_ms.p95", "ms", "max_latency_p95_ms"),
            card("bursts lost", "bursts_lost", "", "max_bursts_lost"),
            card("longest gap", "gap_max_ms", "ms", "max_gap_ms"),
        ]
        if d.get("quality"):
            found.append(card("MOS (probe, mean)", "quality.mos", "", "min_mos"))
        groups.append(CardGroup(f"{d['from']} → {d['to']}", found))
    conv = report.get("conversation")
    if conv is not None:
        agent = AgentThresholds.from_dict(conv["thresholds"])

        def turn_card(label: str, key: str, unit: str, threshold: str | None) -> Card:
            return _card(label, conv, key, unit, f"conversation.{key}", threshold, agent)

        found = [
            turn_card("greeting", "greeting_ms", "ms", None),
            turn_card("response p50", "response_ms.median", "ms", "max_response_median_ms"),
            turn_card("response p95", "response_ms.p95", "ms", "max_response_p95_ms"),
            turn_card("unanswered turns", "turns_unanswered", "", "max_turns_unanswered"),
        ]
        if "barge_in_stop_ms" in conv:
            found.append(
                turn_card("barge-in stop time (slowest)", "barge_in_stop_ms.max", "ms",
                          "max_barge_in_stop_ms")
            )  # fmt: skip
        if (conv.get("transcripts") or {}).get("available"):
            found.append(turn_card("word error rate (mean)", "transcripts.wer_mean", "", "max_wer"))
        groups.append(CardGroup(f"agent {conv['agent']}", found))
    return groups


def _card(
    label: str,
    block: dict[str, Any],
    key: str,
    unit: str,
    path: str,
    threshold: str | None,
    limits: Thresholds | AgentThresholds,
) -> Card:
    value: Any = block
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    limit = None if threshold is None else getattr(limits, threshold)
    bound = None if threshold is None else threshold.split("_", 1)[0]
    return Card(label, value, unit, path, threshold, bound, limit)


def lookup(report: dict[str, Any], path: str) -> Any:
    """The value at a card's `path` in a report (`directions[0].latency_ms.median`)."""
    value: Any = report
    for part in path.replace("]", "").replace("[", ".").split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value
