"""How long a holder refused a slot keeps waiting for one: pure policy, no Redis.

A refused holder learns how the budget's slots turn over: its place among the waiters, how
long slots were held lately and the limit. With every slot busy, one comes free about every
``hold / limit`` seconds, so its own is about ``place`` of those away. A caller with
``patience`` waits for it in its thread when that is soon enough, and otherwise gives up at
once with the expected wait, rather than sit out a timeout it cannot make."""

from __future__ import annotations

from dataclasses import dataclass

# Weight of the newest hold in the running mean: a few dozen holds make it, so a credential
# whose calls slow down is judged by it within a round or two.
HOLD_WEIGHT = 0.2
# The mean is forgotten after this long without a release (the calls of a credential idle
# for a while may not take as long as they did).
HOLD_MEMORY_SECONDS = 600


@dataclass(frozen=True)
class Turnover:
    """What a refused holder learns: its ``place`` among the waiters (1 = first), the running
    mean of slot holds (None before any release), the oldest hold still going on, and the
    budget's ``limit`` in force."""

    place: int
    mean_hold: float | None
    oldest_hold: float
    limit: int

    def expected_wait(self) -> float | None:
        """Seconds until this holder's slot, with holds as long as lately or as the oldest
        going on now (a credential whose calls hang is not judged by its fast past); None
        before any slot was released."""
        if self.mean_hold is None:
            return None
        return self.place * max(self.mean_hold, self.oldest_hold) / max(self.limit, 1)


def wait_left(waited: float, timeout: float, turnover: Turnover, patience: float | None) -> float:
    """Seconds a holder refused after ``waited`` seconds still waits (0 or less: give up).

    Without ``patience``, or before any slot was released (nothing to judge by), it waits
    out ``timeout``. With it, it gives up as soon as its slot is expected later than
    ``patience`` from now, and otherwise waits up to twice ``patience`` in all: waiters are
    not served strictly in turn, and one may be passed over a few times."""
    expected = turnover.expected_wait()
    if patience is None or expected is None:
        return timeout - waited
    if expected > patience:
        return 0.0
    return 2 * patience - waited
