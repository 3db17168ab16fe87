"""Against a redis-server that requires a password (and, in one case, speaks TLS only), the
reconciler and the workers authenticate with PROVISIONER_REDIS_PASSWORD and create runners;
a missing or wrong password stops each process at start with one line and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from provisioner.devenv.certs import generate_certs
from provisioner.devenv.redis_server import LocalRedis, RedisTLS, redis_server_binary
from tests.fixtures import pipeline as pipeline_fixtures

pytestmark = pytest.mark.integration

PASSWORD = "d2c1-redis-test-password:/@"  # URL-special characters on purpose


def _tls_supported(binary: str) -> bool:
    """A redis-server built without TLS refuses --tls-port at once; one with TLS runs (here
    listening nowhere) until the probe's timeout stops it."""
    try:
        answer = subprocess.run(
            [binary, "--port", "0", "--tls-port", "0", "--save", "", "--appendonly", "no"],
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return True
    return "tls-port" not in answer.stdout + answer.stderr


@pytest.fixture(params=["password", "tls and password"])
def protected_redis(request, tmp_path: Path) -> Iterator[LocalRedis]:
    tls = None
    if request.param == "tls and password":
        if not _tls_supported(redis_server_binary()):
            pytest.skip("this redis-server was built without TLS (BUILD_TLS=yes)")
        certs = generate_certs(tmp_path / "certs")
        tls = RedisTLS(certs.ca_cert, certs.serving_cert, certs.serving_key)
    server = LocalRedis(tmp_path / "redis", password=PASSWORD, tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_reconciler_and_workers_create_runners_through_a_protected_redis(
    protected_redis: LocalRedis, kube_api, kubeconfig, namespace, ghsim, celery_workers, tmp_path
) -> None:
    pipeline = pipeline_fixtures.TestPipeline(
        kube_api=kube_api,
        kubeconfig=kubeconfig,
        namespace=namespace,
        redis_url=protected_redis.url,
        ghsim=ghsim,
        workers=celery_workers,
        log_dir=tmp_path / "logs",
        settings_env={"PROVISIONER_REDIS_PASSWORD": PASSWORD},
    )
    try:
        pipeline.start_workers(1)
        pipeline.start_reconciler()
        pipeline.apply_scale_set(replicas=3)
        pipeline.wait_for_runners(3)
    finally:
        pipeline.stop()
    client = redis.Redis.from_url(protected_redis.url, password=PASSWORD)
    try:
        assert client.dbsize() > 0  # the ledger and limits live there
    finally:
        client.close()


def _start(role: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONER_")}
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *role],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "role",
    [["reconciler"], ["worker"], ["flower"], ["gc", "--dry-run"]],
    ids=lambda role: role[0],
)
def test_a_missing_or_wrong_password_stops_the_process_with_one_line(
    role: list[str], kubeconfig: str, tmp_path: Path
) -> None:
    server = LocalRedis(tmp_path / "redis", password=PASSWORD)
    server.start()
    try:
        base = {"PROVISIONER_REDIS_URL": server.url, "PROVISIONER_KUBECONFIG": kubeconfig}
        for given, says in [(None, "is not set"), ("not-the-password", "was given")]:
            env = dict(base)
            if given is not None:
                env["PROVISIONER_REDIS_PASSWORD"] = given
            result = _start(role, env)
            assert result.returncode == 2, result.stderr[-2000:]
            (line,) = result.stderr.strip().splitlines()
            assert "refused the credentials" in line
            assert f"PROVISIONER_REDIS_PASSWORD {says}" in line
            assert "not-the-password" not in line
    finally:
        server.stop()
