"""API calls during a run, counted where they are answered: the simulator's counters for
GitHub, the API server's own ``apiserver_request_total`` for Kubernetes."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

# Verbs of apiserver_request_total that change something (APPLY is server-side apply).
KUBE_WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"})


@dataclass(frozen=True)
class GitHubCalls:
    total: int
    # Answers refusing the call for a primary or secondary rate limit (429 or 403).
    throttled: int

    @classmethod
    def from_counters(cls, counters: dict) -> GitHubCalls:
        return cls(
            total=int(counters.get("total", 0)),
            throttled=int(counters.get("primary_rate_limited", 0))
            + int(counters.get("secondary_rate_limited", 0)),
        )

    def __sub__(self, earlier: GitHubCalls) -> GitHubCalls:
        return GitHubCalls(self.total - earlier.total, self.throttled - earlier.throttled)


@dataclass(frozen=True)
class KubeRequests:
    writes: int
    reads: int

    @classmethod
    def from_metrics(cls, text: str) -> KubeRequests:
        """Totals of ``apiserver_request_total`` from the API server's /metrics text."""
        writes = reads = 0.0
        for family in text_string_to_metric_families(text):
            if family.name != "apiserver_request":
                continue
            for sample in family.samples:
                if sample.name != "apiserver_request_total":
                    continue
                if sample.labels.get("verb") in KUBE_WRITE_VERBS:
                    writes += sample.value
                else:
                    reads += sample.value
        return cls(int(writes), int(reads))

    def __sub__(self, earlier: KubeRequests) -> KubeRequests:
        return KubeRequests(self.writes - earlier.writes, self.reads - earlier.reads)
