"""Construction of Kubernetes API clients from a kubeconfig or the in-cluster config.

Every request carries a timeout: without one, a call to an API server that stopped answering
(a hung connection, a partitioned node) would block its thread for good, and a reconciler
blocked that way could go on acting after its leader Lease ran out."""

from __future__ import annotations

from typing import Any

from kubernetes import client, config

CONNECT_TIMEOUT_SECONDS = 5.0
# Longer than any single call the provisioner makes (a list of 10,000 pods included).
READ_TIMEOUT_SECONDS = 30.0
# A watch is closed by the server after its timeoutSeconds (at most 300 here) and sends
# bookmarks meanwhile; a read this long with nothing means the connection is dead.
WATCH_READ_TIMEOUT_SECONDS = 330.0


class TimeoutApiClient(client.ApiClient):
    """An ApiClient whose requests time out unless the caller sets its own timeout."""

    def call_api(
        self,
        method: Any,
        url: Any,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        if _request_timeout is None:
            watching = "watch=true" in str(url).lower()
            _request_timeout = (
                CONNECT_TIMEOUT_SECONDS,
                WATCH_READ_TIMEOUT_SECONDS if watching else READ_TIMEOUT_SECONDS,
            )
        return super().call_api(
            method, url, header_params, body, post_params, _request_timeout=_request_timeout
        )


def api_client(kubeconfig: str | None = None, pool_size: int | None = None) -> client.ApiClient:
    """A client for ``kubeconfig``; without one, in-cluster config, then ~/.kube/config.
    ``pool_size`` connections are kept open for threads that share the client."""
    configuration = client.Configuration()
    if pool_size is not None:
        configuration.connection_pool_maxsize = pool_size
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)
    return TimeoutApiClient(configuration)
