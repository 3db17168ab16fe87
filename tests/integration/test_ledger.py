"""The ledger and batch progress against a real redis-server."""

from __future__ import annotations

import json
import threading

import pytest
import redis

from provisioner.ledger import BatchProgress, Ledger, LedgerEntry

pytestmark = pytest.mark.integration

NOW = 1_000_000.0


@pytest.fixture
def client(redis_url: str):
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def entry(name: str, deadline: float, scale_set: str = "team/linux") -> LedgerEntry:
    return LedgerEntry(scale_set, name, "batch-1", deadline)


def test_entry_survives_json():
    original = entry("linux-ab12c", NOW + 60.5)
    assert LedgerEntry.from_dict(json.loads(json.dumps(original.to_dict()))) == original


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"scale_set": "a/b", "name": "n", "batch_id": "b"}, "deadline"),
        ({"scale_set": "a/b", "batch_id": "b", "deadline": 1}, "name"),
        ({"scale_set": "a/b", "name": "n", "batch_id": "b", "deadline": "soon"}, "deadline"),
    ],
)
def test_bad_entry_names_the_field(data, field):
    with pytest.raises(ValueError, match=field):
        LedgerEntry.from_dict(data)


def test_recorded_entries_are_in_flight_until_completed(client):
    ledger = Ledger(client)
    entries = [entry(f"linux-{i:05d}", NOW + 60) for i in range(5)]
    ledger.record(entries)
    assert sorted(e.name for e in ledger.in_flight("team/linux", NOW)) == [e.name for e in entries]
    assert ledger.in_flight("team/other", NOW) == []
    ledger.complete("team/linux", "linux-00002")
    assert "linux-00002" not in {e.name for e in Ledger(client).in_flight("team/linux", NOW)}
    assert len(ledger.in_flight("team/linux", NOW)) == 4


def test_entries_past_their_deadline_are_not_in_flight_but_expired(client):
    ledger = Ledger(client)
    ledger.record(
        [
            entry("linux-live1", NOW + 60),
            entry("linux-lost1", NOW - 1),
            entry("mac-lost1", NOW - 5, scale_set="team/mac"),
            entry("mac-live1", NOW + 5, scale_set="team/mac"),
        ]
    )
    assert [e.name for e in ledger.in_flight("team/linux", NOW)] == ["linux-live1"]
    expired = ledger.expired(NOW)
    assert {(e.scale_set, e.name) for e in expired} == {
        ("team/linux", "linux-lost1"),
        ("team/mac", "mac-lost1"),
    }
    ledger.remove(expired)
    assert ledger.expired(NOW) == []
    assert {e.name for e in ledger.in_flight("team/mac", NOW)} == {"mac-live1"}
    # Later, the live ones expire too.
    assert {e.name for e in ledger.expired(NOW + 3600)} == {"linux-live1", "mac-live1"}


def test_a_scale_set_with_an_empty_ledger_is_forgotten_and_found_again(client):
    ledger = Ledger(client)
    ledger.record([entry("linux-aaaaa", NOW - 1)])
    ledger.remove(ledger.expired(NOW))
    assert ledger.expired(NOW) == []
    assert client.smembers("provisioner:ledger-scale-sets") == set()
    ledger.record([entry("linux-bbbbb", NOW - 1)])
    assert [e.name for e in ledger.expired(NOW)] == ["linux-bbbbb"]


def test_recording_nothing_is_fine(client):
    ledger = Ledger(client)
    ledger.record([])
    ledger.remove([])
    assert ledger.expired(NOW) == []


def test_batch_progress_counts_every_outcome_once_under_concurrency(redis_url, client):
    BatchProgress(client).start("b1", "team/linux", 200)
    seen: list[tuple[int, int]] = []

    def finish(outcome: str) -> None:
        progress = BatchProgress(redis.Redis.from_url(redis_url))
        for _ in range(25):
            seen.append(progress.record_outcome("b1", outcome))

    threads = [
        threading.Thread(target=finish, args=("created" if i % 4 else "failed",)) for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(done for done, _ in seen) == list(range(1, 201))
    assert {total for _, total in seen} == {200}
    assert BatchProgress(client).get("b1") == {
        "scale_set": "team/linux",
        "total": 200,
        "done": 200,
        "outcomes": {"created": 150, "failed": 50},
    }


def test_batch_counters_expire_after_a_day(client):
    progress = BatchProgress(client)
    progress.start("b2", "team/linux", 3)
    progress.record_outcome("b2", "created")
    assert 86000 < client.ttl("provisioner:batch:b2") <= 86400


def test_an_unknown_batch(client):
    progress = BatchProgress(client)
    assert progress.get("nope") is None
    assert progress.record_outcome("nope", "created") == (1, 0)


def test_one_runner_is_in_flight_until_completed_or_past_its_deadline(redis_url):
    ledger = Ledger(redis.Redis.from_url(redis_url))
    entry = LedgerEntry("ns/set", "set-abcde", "b1", deadline=1000.0)
    ledger.record([entry])
    assert ledger.is_in_flight("ns/set", "set-abcde", now=999.0)
    assert not ledger.is_in_flight("ns/set", "set-abcde", now=1000.0)
    assert not ledger.is_in_flight("ns/set", "set-other", now=0.0)
    ledger.complete("ns/set", "set-abcde")
    assert not ledger.is_in_flight("ns/set", "set-abcde", now=999.0)


def test_a_created_runner_stays_counted_but_is_no_longer_wanted(client):
    ledger = Ledger(client)
    planned = entry("linux-crtd1", NOW + 60)
    ledger.record([planned])
    assert ledger.mark_created("team/linux", "linux-crtd1", NOW + 1.5)

    (kept,) = ledger.in_flight("team/linux", NOW)
    assert (kept.name, kept.created_at, kept.deadline) == ("linux-crtd1", NOW + 1.5, NOW + 60)
    # No task creates it again, whatever is delivered twice.
    assert not ledger.is_in_flight("team/linux", "linux-crtd1", NOW)


def test_a_cancelled_runner_is_not_marked_created_back_into_the_ledger(client):
    ledger = Ledger(client)
    ledger.record([entry("linux-gone1", NOW + 60)])
    ledger.complete("team/linux", "linux-gone1")
    assert not ledger.mark_created("team/linux", "linux-gone1", NOW)
    assert ledger.entries("team/linux") == []
