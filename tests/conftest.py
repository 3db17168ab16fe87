"""Fixture plugins: each module under tests/fixtures/ owns one kind of real server."""

pytest_plugins = [
    "tests.fixtures.cluster",
    "tests.fixtures.ghsim",
    "tests.fixtures.kubelet",
    "tests.fixtures.workers",
    "tests.fixtures.pipeline",
]
