"""The transition table: every pair of states is either in the table or raises."""

from __future__ import annotations

import itertools

import pytest

from auxilio.server.errors import IllegalTransition
from auxilio.server.tickets.states import TRANSITIONS, TicketStatus, check_transition, is_reopen

PAIRS = list(itertools.product(TicketStatus, TicketStatus))


@pytest.mark.parametrize(("current", "target"), PAIRS)
def test_it_allows_exactly_the_table(current: TicketStatus, target: TicketStatus) -> None:
    if target in TRANSITIONS[current]:
        check_transition(current, target)
        return
    with pytest.raises(IllegalTransition) as caught:
        check_transition(current, target)
    assert caught.value.details == {
        "from": current.value, "to": target.value,
        "allowed": sorted(s.value for s in TRANSITIONS[current]),
    }


def test_it_counts_only_moves_back_to_open_as_reopens() -> None:
    assert is_reopen(TicketStatus.RESOLVED, TicketStatus.OPEN)
    assert is_reopen(TicketStatus.CLOSED, TicketStatus.OPEN)
    assert not is_reopen(TicketStatus.PENDING, TicketStatus.OPEN)


def test_it_reaches_closed_only_through_resolved() -> None:
    assert [s for s, targets in TRANSITIONS.items() if TicketStatus.CLOSED in targets] == [
        TicketStatus.RESOLVED
    ]
