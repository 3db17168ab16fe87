"""The reconciler: watches RunnerScaleSets and their pods, plans, records and dispatches."""
