from provisioner.creation.outcome import (
    CREATED,
    FAILED,
    SKIPPED,
    CreationResult,
    progress_milestone,
    summarize,
)


def result(outcome: str, reason: str | None = None, throttled: int = 0) -> CreationResult:
    return CreationResult("r", "ns/set", "b1", outcome, reason, attempts=1, throttled=throttled)


def test_event_message_names_the_failure_reason():
    results = [result(CREATED)] * 97 + [result(FAILED, "rate limited")] * 3
    summary = summarize(results, "ns/set", "b1", 12.0)
    assert (summary.created, summary.failed, summary.planned) == (97, 3, 100)
    assert summary.message == "Created 97/100 runners; 3 failed: rate limited"


def test_several_reasons_are_counted_most_frequent_first():
    results = [result(FAILED, "quota exceeded")] * 2 + [result(FAILED, "GitHub server error")]
    message = summarize(results, "ns/set", "b1", 1.0).message
    assert message == ("Created 0/3 runners; 3 failed: 2 quota exceeded, 1 GitHub server error")


def test_skipped_runners_are_neither_created_nor_failed():
    summary = summarize([result(CREATED), result(SKIPPED)], "ns/set", "b1", 1.0)
    assert (summary.created, summary.skipped, summary.failed) == (1, 1, 0)
    assert summary.message == "Created 1/2 runners (1 already done)"


def test_result_survives_a_json_round_trip():
    original = result(FAILED, "timed out", throttled=2)
    assert CreationResult.from_dict(original.to_dict()) == original


def test_status_of_a_batch_counts_throttling():
    summary = summarize([result(CREATED, throttled=3)], "ns/set", "b1", 2.5)
    status = summary.to_status("2026-01-01T00:00:00Z")
    assert status["throttled"] == 3
    assert status["created"] == 1 and status["failed"] == 0


def test_progress_is_logged_every_tenth_and_at_the_end():
    logged = [done for done in range(1, 101) if progress_milestone(done, 100)]
    assert logged == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert [d for d in range(1, 4) if progress_milestone(d, 3)] == [1, 2, 3]
    assert not progress_milestone(0, 0)
