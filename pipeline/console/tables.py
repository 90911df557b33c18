"""The tables printed once a run is verified, from its signed report: one row per direction
(`proof_table`), or the conversation with an agent under test (`conversation_table`). Tests parse
them: keep their columns stable."""

from __future__ import annotations

from typing import Any


def proof_table(report: dict[str, Any]) -> str:
    """What the signed report found, one direction per row; tests parse it, keep it stable."""
    head = (
        f"{'direction':<20}{'bursts':>9}{'lost':>6}{'snr_db':>8}{'pkt_loss_%':>11}"
        f"{'lat_median_ms':>14}{'lat_p95_ms':>11}{'lat_max_ms':>11}"
    )
    lines = [head]
    for d in report.get("directions", []):
        latency = d.get("latency_ms") or {}
        rtc = d.get("rtc") or {}

        def num(value: Any, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        lines.append(
            f"{d['from'] + ' -> ' + d['to']:<20}"
            f"{str(d.get('bursts_detected')) + '/' + str(d.get('bursts_sent')):>9}"
            f"{num(d.get('bursts_lost'), 'd'):>6}{num(d.get('snr_db'), '.1f'):>8}"
            f"{num(rtc.get('packet_loss_pct'), '.2f'):>11}"
            f"{num(latency.get('median'), '.1f'):>14}{num(latency.get('p95'), '.1f'):>11}"
            f"{num(latency.get('max'), '.1f'):>11}"
        )
    return "\n".join(lines)


def conversation_table(report: dict[str, Any]) -> str:
    """What the signed report found of the conversation: turns, responses, the greeting, how long
    the agent took to join after its dispatch and to be heard."""
    conv = report["conversation"]
    r = conv["response_ms"]

    def num(value: Any) -> str:
        return "-" if value is None else f"{value:.1f}"

    head = (
        f"{'agent':<20}{'turns':>7}{'answered':>10}{'resp_median_ms':>16}{'resp_p95_ms':>13}"
        f"{'resp_max_ms':>13}{'greeting_ms':>13}{'talk_s':>8}{'dispatch_ms':>13}"
        f"{'first_audio_ms':>16}"
    )
    row = (
        f"{conv['agent'][:19]:<20}{conv['turns_sent']:>7}{conv['turns_answered']:>10}"
        f"{num(r['median']):>16}{num(r['p95']):>13}{num(r['max']):>13}"
        f"{num(conv['greeting_ms']):>13}{num(conv['talk_time_s']):>8}"
        f"{num(conv.get('dispatch_ms')):>13}{num(conv.get('first_audio_ms')):>16}"
    )
    lines = [head, row]
    if conv.get("barge_ins") or conv.get("barge_ins_missed"):
        b, on = conv["barge_in_stop_ms"], conv["barge_ins_talked_on"]
        lines.append(
            f"barge-ins {conv['barge_ins']}: stop median {num(b['median'])} ms, max "
            f"{num(b['max'])} ms; not stopped: {', '.join(map(str, on)) or 'none'}; "
            f"missed: {', '.join(map(str, conv['barge_ins_missed'])) or 'none'}"
        )
    if conv.get("talk_over_ms"):
        turns = ", ".join(map(str, conv["talk_over_turns"]))
        lines.append(f"talk-over {num(conv['talk_over_ms'])} ms (turn {turns})")
    return "\n".join(lines)
