"""Kubernetes adapters: client construction and RunnerScaleSet access."""
