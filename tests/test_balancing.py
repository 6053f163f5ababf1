"""The balancing plan (pure): every monitor led, no daemon over its share, no churn."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fairlens_monitor.ops.balancing import Plan, plan, share_of

NAMES = st.lists(st.from_regex(r"[a-z0-9_]{1,8}", fullmatch=True), unique=True, max_size=40)


def apply(holders: dict[str, str | None], me: str, todo: Plan, live: list[str]) -> None:
    """What the database does with a plan: a take succeeds only on a free monitor (never
    held, released, or held by a daemon missing from the registry)."""
    for m in todo.release:
        assert holders[m] == me
        holders[m] = None
    for m in todo.take:
        if holders.get(m) is None or holders[m] not in live:
            holders[m] = me


def round_of(monitors: list[str], live: list[str], holders: dict[str, str | None]) -> None:
    for me in live:
        apply(holders, me, plan(me, monitors, live, holders), live)


@settings(max_examples=300, deadline=None)
@given(
    monitors=NAMES,
    daemons=st.integers(min_value=1, max_value=7),
    seed=st.lists(st.integers(min_value=-1, max_value=9), max_size=40),
)
def test_two_rounds_lead_every_monitor_within_the_share(
    monitors: list[str], daemons: int, seed: list[int]
) -> None:
    live = [f"d{k}" for k in range(daemons)]
    # any starting state: held by a live daemon, by a dead one (d9), or by nobody
    holders: dict[str, str | None] = {
        m: (None if s < 0 else f"d{s}") for m, s in zip(monitors, seed + [-1] * 40, strict=False)
    }
    share = share_of(len(monitors), daemons)
    round_of(monitors, live, holders)
    # after one round no live daemon leads more than its share (a surplus was released)
    counts = {d: sum(h == d for h in holders.values()) for d in live}
    assert max(counts.values(), default=0) <= share
    round_of(monitors, live, holders)
    assert all(holders[m] in live for m in monitors), "every monitor has a live leader"
    counts = {d: sum(h == d for h in holders.values()) for d in live}
    assert max(counts.values(), default=0) <= share


@given(monitors=NAMES, daemons=st.integers(min_value=1, max_value=7))
def test_a_balanced_state_is_left_alone(monitors: list[str], daemons: int) -> None:
    live = [f"d{k}" for k in range(daemons)]
    holders: dict[str, str | None] = {m: live[k % daemons] for k, m in enumerate(monitors)}
    for me in live:
        assert plan(me, monitors, live, holders) == Plan((), (), share_of(len(monitors), daemons))


def test_a_dead_daemons_monitors_go_to_the_survivors() -> None:
    monitors = [f"m{k:02d}" for k in range(30)]
    live = ["a", "b", "c"]
    holders: dict[str, str | None] = {m: live[k % 3] for k, m in enumerate(monitors)}
    live = ["a", "b"]  # c died: its leases expired and its registry row with them
    round_of(monitors, live, holders)
    assert all(holders[m] in live for m in monitors)
    assert sorted(sum(h == d for h in holders.values()) for d in live) == [15, 15]


def test_a_busy_monitor_is_not_released_mid_cycle() -> None:
    holders: dict[str, str | None] = {"x": "a", "y": "a", "z": "a"}
    todo = plan("a", ["x", "y", "z"], ["a", "b", "c"], holders, busy=["x", "y", "z"])
    assert todo.release == ()  # all three run now: given back after their cycles
    todo = plan("a", ["x", "y", "z"], ["a", "b", "c"], holders, busy=["x"])
    assert len(todo.release) == 2
    assert "x" not in todo.release


def test_the_share_is_the_ceiling() -> None:
    assert [share_of(m, n) for m, n in [(0, 3), (30, 3), (31, 3), (5, 0), (1, 2)]] == [
        0,
        10,
        11,
        5,
        1,
    ]
    # a daemon missing from the registry it reads still counts itself
    assert plan("me", ["a", "b"], [], {}).take
    assert plan("me", ["a", "b"], [], {}).share == 2
