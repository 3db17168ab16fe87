"""The shared runtime: what the reconciler and the workers both use (clients, limits, ledger,
runner locks, the task queue), below both and above the adapters."""

from provisioner.runtime.runtime import Runtime

__all__ = ["Runtime"]
