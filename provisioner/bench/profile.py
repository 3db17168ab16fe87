"""Profile one runner creation: ``python -m provisioner.bench.profile [N]``.

Starts the local pipeline with the simulator at 0 ms latency, stops the reconciler and the
workers, and calls RunnerCreator.create for N runners one after another in the main thread
under pyinstrument (the `bench` extra), so the profile shows a creation's own work. Prints the
time per creation and the profile as text.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

from provisioner.bench.session import BenchSession, InProcessCreator
from provisioner.config import Settings
from provisioner.devenv.pipeline import LocalPipeline
from provisioner.ledger import LedgerEntry
from provisioner.naming import runner_names

NAMESPACE = "profile"
SCALE_SET = "profile"


def profile_creations(runners: int, state_dir: Path) -> str:
    from pyinstrument import Profiler

    settings = Settings()
    pipeline = LocalPipeline(state_dir, settings, workers=1, ghsim_args=["--latency-ms", "0"])
    pipeline.start()
    try:
        session = BenchSession(pipeline, NAMESPACE, settings, 1, 0.0, timeout=600, grace=30)
        session.use(session.setup_for("limit", 1))
        pipeline.apply_scale_set(NAMESPACE, SCALE_SET, replicas=0, max_runners=runners + 1)
        creator = InProcessCreator(session.in_process(settings))
        try:
            key = f"{NAMESPACE}/{SCALE_SET}"
            scale_set = creator.runtime.scale_sets.get(key, None)
            names = runner_names(scale_set.runner_name_prefix, runners + 1, random.Random())
            deadline = time.time() + 3600
            entries = [
                LedgerEntry(key, name, "profile", deadline, owner_uid=scale_set.uid)
                for name in names
            ]
            creator.runtime.ledger.record(entries)
            # The first creation sets up clients and reads credentials: not profiled.
            creator.creator.create(entries[0], scale_set.generation)
            profiler = Profiler(interval=0.0005)
            started = time.perf_counter()
            with profiler:
                for entry in entries[1:]:
                    creator.creator.create(entry, scale_set.generation)
            elapsed = time.perf_counter() - started
        finally:
            creator.close()
    finally:
        pipeline.stop()
    summary = (
        f"{runners} creations in one thread: {elapsed:.2f}s, {elapsed / runners * 1000:.1f} ms each"
    )
    return summary + "\n" + profiler.output_text(unicode=False, color=False)


def main(argv: list[str]) -> int:
    runners = int(argv[0]) if argv else 300
    if runners < 1:
        print("N must be at least 1", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="provisioner-profile-") as tmp:
        print(profile_creations(runners, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
