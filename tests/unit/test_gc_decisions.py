from provisioner.github import Runner
from provisioner.naming import owner_label, runner_name_pattern
from provisioner.reconciler.gc import orphans, own_registrations


def registration(name: str, *labels: str) -> Runner:
    return Runner(id=hash(name), name=name, os="linux", status="online", busy=False, labels=labels)


def test_a_new_orphan_is_remembered_not_removed():
    remove, seen = orphans(["r-aaaaa"], keep=set(), first_seen={}, now=100.0, grace=60.0)
    assert remove == []
    assert seen == {"r-aaaaa": 100.0}


def test_an_orphan_past_the_grace_period_is_removed_and_forgotten():
    remove, seen = orphans(["r-aaaaa"], set(), {"r-aaaaa": 10.0}, now=100.0, grace=60.0)
    assert remove == ["r-aaaaa"]
    assert seen == {}


def test_a_runner_with_a_pod_or_ledger_entry_is_never_an_orphan():
    remove, seen = orphans(
        ["r-aaaaa", "r-bbbbb"], {"r-aaaaa", "r-bbbbb"}, {"r-aaaaa": 0.0}, now=1e6, grace=1.0
    )
    assert (remove, seen) == ([], {})


def test_zero_grace_removes_orphans_at_once():
    remove, _ = orphans(["r-aaaaa", "r-bbbbb"], {"r-bbbbb"}, {}, now=5.0, grace=0.0)
    assert remove == ["r-aaaaa"]


def test_name_pattern_does_not_reach_into_another_scale_sets_runners():
    pattern = runner_name_pattern("runners")
    assert pattern.match("runners-a1b2c")
    assert not pattern.match("runners-big-a1b2c")
    assert not pattern.match("other-a1b2c")
    assert not pattern.match("runners-a1b2c3")


def test_a_shared_listing_gives_each_scale_set_only_its_own_registrations():
    listing = [
        registration("runners-aaaaa", "self-hosted", owner_label("uid-1")),
        registration("runners-bbbbb", owner_label("uid-2")),  # same prefix, other owner
        registration("runners-ccccc", "self-hosted"),  # no owner label: nobody's to collect
        registration("other-ddddd", owner_label("uid-1")),  # not a name it gives
        registration("runners-eeeee", owner_label("uid-1").upper()),  # labels ignore case
    ]

    assert sorted(own_registrations(listing, "runners", "uid-1")) == [
        "runners-aaaaa",
        "runners-eeeee",
    ]
    assert list(own_registrations(listing, "runners", "uid-2")) == ["runners-bbbbb"]
    assert own_registrations(listing, "runners", "uid-3") == {}
