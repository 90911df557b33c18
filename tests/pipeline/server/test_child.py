"""The embedded server's child process: the impairment policy it builds."""

from __future__ import annotations

from echoproof import sfu
from pipeline.config.impairment import Impairments, LinkImpairment, direction_of
from pipeline.server._child import policy


def test_policy_impairs_each_direction_by_its_speaker() -> None:
    """The child's policy gives a stream the impairment of its speaker's direction, else None."""
    imp = Impairments(customer_to_support=LinkImpairment(loss_pct=5, outages=((1.0, 2.0),)))
    choose = policy(imp)
    to_support = choose("customer-1234", "support-agent-5678")
    assert to_support == sfu.Impairment(loss_pct=5, outages=((1.0, 2.0),))
    assert choose("support-agent-5678", "customer-1234") is None
    assert choose("someone-else", "customer-1234") is None
    assert direction_of("support-agent-x") == "support_to_customer"
    assert direction_of("customer-x") == "customer_to_support"
