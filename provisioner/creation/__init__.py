"""Creating runners: one runner's creation with retries and rollback (creator), what a failure
means (failures), what a batch came to (outcome) and how it is reported (report). Shared by
the workers' tasks and the reconciler's sequential path."""
