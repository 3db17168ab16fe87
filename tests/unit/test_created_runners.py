"""Which created runners leave the ledger (their Pod was seen) and which are asked for."""

from hypothesis import given
from hypothesis import strategies as st

from provisioner.planner import plan_created_runners


def test_a_created_runner_leaves_the_ledger_once_its_pod_is_seen():
    plan = plan_created_runners(
        {"a": 100.0, "b": 100.0}, observed={"a"}, now=101.0, unseen_after=30.0, limit=10
    )
    assert plan.seen == ("a",)
    assert plan.to_confirm == ()


def test_a_runner_unseen_for_long_is_asked_for_the_longest_unseen_first():
    created = {"new": 95.0, "old": 10.0, "older": 5.0, "oldest": 1.0}
    plan = plan_created_runners(created, observed=set(), now=100.0, unseen_after=30.0, limit=2)
    assert plan.seen == ()
    assert plan.to_confirm == ("oldest", "older")


@given(
    st.dictionaries(st.text(min_size=1, max_size=3), st.floats(0, 1000), max_size=15),
    st.sets(st.text(min_size=1, max_size=3), max_size=15),
    st.floats(0, 1000),
    st.integers(0, 5),
)
def test_only_created_runners_are_named_and_none_twice(created, observed, now, limit):
    plan = plan_created_runners(created, observed, now, unseen_after=30.0, limit=limit)
    assert set(plan.seen) == set(created) & observed
    assert len(plan.to_confirm) <= limit
    assert not set(plan.to_confirm) & observed
    assert all(now - created[name] >= 30.0 for name in plan.to_confirm)
