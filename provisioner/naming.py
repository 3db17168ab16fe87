"""Who a runner is: its name, and the mark that says which RunnerScaleSet owns it.

Names are ``<prefix>-<5 of [a-z0-9]>``; two scale sets may share a prefix (same name in two
namespaces or clusters, registering into one organisation), so a name alone never proves
ownership. Every registration also carries an owner label made from the RunnerScaleSet's
uid, unique per resource; garbage collection, conflict recovery and scale-down touch a
registration only when it carries their own. Pure."""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterable

NAME_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
NAME_SUFFIX_LENGTH = 5
OWNER_LABEL_PREFIX = "provisioner-owner-"


def runner_names(prefix: str, count: int, rng: random.Random) -> list[str]:
    """``count`` distinct names ``<prefix>-<5 of [a-z0-9]>``; the same rng state gives the
    same names."""
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        name = f"{prefix}-{''.join(rng.choices(NAME_SUFFIX_ALPHABET, k=NAME_SUFFIX_LENGTH))}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def runner_name_pattern(prefix: str) -> re.Pattern[str]:
    """Names the planner gives runners with ``prefix``."""
    return re.compile(rf"^{re.escape(prefix)}-[{NAME_SUFFIX_ALPHABET}]{{{NAME_SUFFIX_LENGTH}}}$")


def owner_label(scale_set_uid: str) -> str:
    """The GitHub runner label that marks a registration as the scale set's."""
    if not scale_set_uid:
        raise ValueError("a RunnerScaleSet without a uid cannot own runners")
    return OWNER_LABEL_PREFIX + scale_set_uid


def is_owned_by(labels: Iterable[str], scale_set_uid: str) -> bool:
    """Whether a registration with ``labels`` belongs to the scale set with this uid. GitHub
    compares labels without regard to case."""
    wanted = owner_label(scale_set_uid).lower()
    return any(label.lower() == wanted for label in labels)
