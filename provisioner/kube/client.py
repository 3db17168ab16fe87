"""Construction of Kubernetes API clients from a kubeconfig or the in-cluster config."""

from __future__ import annotations

from kubernetes import client, config


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
    return client.ApiClient(configuration)
