from hypothesis import given
from hypothesis import strategies as st

from provisioner.planner import plan_scale_down
from provisioner.scale_down_lookups import (
    LookupStep,
    RegistrationState,
    listing_pages,
    next_lookup,
    runner_views,
)

BUSY, IDLE, ABSENT = RegistrationState.BUSY, RegistrationState.IDLE, RegistrationState.ABSENT
LIVE = [f"r{i}" for i in range(10)]  # oldest first


def test_a_listing_costs_a_call_per_page_of_the_scope():
    assert listing_pages(10_000, 5, 100) == 100
    assert listing_pages(10_001, 5, 100) == 101
    assert listing_pages(None, 5, 100) == 1


def test_the_scale_sets_own_runners_are_a_lower_bound_of_the_scope():
    assert listing_pages(None, 250, 100) == 3
    assert listing_pages(40, 250, 100) == 3


def test_a_few_removals_from_a_large_scope_ask_about_the_newest_runners():
    assert next_lookup(LIVE, 2, {}, pages=100, concurrency=10) == LookupStep(ask=("r9", "r8"))


def test_as_many_are_asked_about_at_once_as_the_concurrency():
    step = next_lookup(LIVE, 8, {}, pages=100, concurrency=3)
    assert step == LookupStep(ask=("r9", "r8", "r7"))


def test_a_busy_runner_is_passed_over_for_the_next_newest():
    known = {"r9": BUSY, "r8": IDLE}
    assert next_lookup(LIVE, 2, known, pages=100, concurrency=10) == LookupStep(ask=("r7",))


def test_nothing_more_is_asked_once_enough_may_go():
    known = {"r9": IDLE, "r8": ABSENT}
    assert next_lookup(LIVE, 2, known, pages=100, concurrency=10) == LookupStep()


def test_nothing_more_is_asked_once_every_runner_was():
    known = dict.fromkeys(LIVE, BUSY)
    assert next_lookup(LIVE, 2, known, pages=100, concurrency=10) == LookupStep()


def test_more_removals_than_pages_list_the_scope():
    assert next_lookup(LIVE, 5, {}, pages=4, concurrency=10) == LookupStep(list_scope=True)
    assert next_lookup(LIVE, 4, {}, pages=4, concurrency=10) == LookupStep(
        ask=("r9", "r8", "r7", "r6")
    )


def test_busy_runners_met_on_the_way_turn_to_a_listing_once_it_costs_less():
    known = {"r9": BUSY, "r8": BUSY}
    assert next_lookup(LIVE, 2, known, pages=3, concurrency=10) == LookupStep(list_scope=True)


def test_a_runner_not_asked_about_is_taken_for_busy():
    views = {v.name: v for v in runner_views(["a", "b", "c", "d"], {"b": IDLE, "c": ABSENT})}
    assert (views["a"].busy, views["a"].registered) == (True, True)
    assert (views["b"].busy, views["b"].registered) == (False, True)
    assert (views["c"].busy, views["c"].registered) == (False, False)
    assert (views["d"].busy, views["d"].registered) == (True, True)
    assert [views[n].created_at for n in "abcd"] == [0, 1, 2, 3]


states = st.sampled_from(list(RegistrationState))


@given(
    st.lists(states, max_size=40),
    st.integers(0, 45),
    st.one_of(st.none(), st.integers(0, 5_000)),
    st.integers(1, 12),
)
def test_lookups_never_let_a_busy_or_unasked_runner_go(truth, keep, scope_total, concurrency):
    """Plays the reconciler: asks GitHub (``truth``) what each step says, until it stops or
    lists the scope (then every runner is known), and plans the scale-down from that."""
    live = [f"r{i}" for i in range(len(truth))]
    registration = dict(zip(live, truth, strict=True))
    excess = len(live) - keep
    pages = listing_pages(scope_total, len(live), 10)
    known: dict[str, RegistrationState] = {}
    for _ in range(len(live) + 1):
        step = next_lookup(live, excess, known, pages, concurrency)
        if step.list_scope or not step.ask:
            break
        not_asked = [name for name in reversed(live) if name not in known]
        assert list(step.ask) == not_asked[: len(step.ask)]  # the newest not asked yet
        assert len(step.ask) <= concurrency
        known.update((name, registration[name]) for name in step.ask)
    else:
        raise AssertionError("the lookups never ended")
    if step.list_scope:
        known = registration
    else:
        # Never more calls than the listing would have cost.
        assert len(known) <= pages
    plan = plan_scale_down(keep, runner_views(live, known))
    assert all(name in known and registration[name] is not BUSY for name in plan.remove)
    free = sum(1 for state in truth if state is not BUSY)
    assert len(plan.remove) == max(0, min(excess, free))
    assert len(plan.remove) + plan.draining == max(0, excess)
