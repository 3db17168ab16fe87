"""Counting API calls for the benchmark: simulator counters and the API server's metrics."""

from __future__ import annotations

from provisioner.bench.counts import GitHubCalls, KubeRequests

METRICS = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",resource="pods",verb="POST"} 12
apiserver_request_total{code="201",component="apiserver",resource="secrets",verb="POST"} 12
apiserver_request_total{code="200",component="apiserver",resource="leases",verb="PUT"} 3
apiserver_request_total{code="200",component="apiserver",resource="pods",verb="DELETE"} 2
apiserver_request_total{code="200",component="apiserver",resource="pods",verb="LIST"} 40
apiserver_request_total{code="0",component="apiserver",resource="pods",verb="WATCH"} 5
# HELP apiserver_request_duration_seconds Response latency.
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_count{resource="pods",verb="POST"} 12
"""


def test_writes_and_reads_are_summed_by_verb() -> None:
    counted = KubeRequests.from_metrics(METRICS)
    assert counted == KubeRequests(writes=29, reads=45)


def test_kube_delta() -> None:
    assert KubeRequests(30, 50) - KubeRequests(10, 45) == KubeRequests(20, 5)


def test_github_throttling_counts_primary_and_secondary_refusals() -> None:
    before = GitHubCalls.from_counters({"total": 10, "secondary_rate_limited": 1})
    after = GitHubCalls.from_counters(
        {"total": 120, "primary_rate_limited": 2, "secondary_rate_limited": 4}
    )
    assert after - before == GitHubCalls(total=110, throttled=5)
