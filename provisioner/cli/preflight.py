"""Start-up checks of settings that validate but cannot work here: no usable Kubernetes
configuration, or a Redis that refuses the credentials. Each stops the process with one line
naming the setting (exit status 2), before it serves or loops, rather than a traceback later
or a worker that runs without being able to do anything."""

from __future__ import annotations

from provisioner.config import Settings, SettingsError, env_name, flag_name, redact_url


def check_kube_config(settings: Settings) -> None:
    """Load the Kubernetes configuration the process would use, and drop it."""
    from kubernetes.config import ConfigException

    from provisioner.kube.client import api_client

    try:
        api_client(settings.kubeconfig).close()
    except (ConfigException, OSError, ValueError) as exc:
        where = settings.kubeconfig or "unset: neither in-cluster nor ~/.kube/config works"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SettingsError(
            f"no usable Kubernetes configuration for {flag_name('kubeconfig')} "
            f"({env_name('kubeconfig')}) [{where}]: {reason}"
        ) from None


def check_redis_credentials(settings: Settings) -> None:
    """Ping Redis once: a refused password is a setting to fix, so it stops the process. A
    Redis that is not reachable yet is waited for, as before, by the process itself."""
    import redis

    client = redis.Redis.from_url(
        settings.redis_connection_url(), socket_timeout=5, socket_connect_timeout=5
    )
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        given = "was given" if settings.redis_password is not None else "is not set"
        raise SettingsError(
            f"Redis at {redact_url(settings.redis_url)} refused the credentials ({exc}); "
            f"{env_name('redis_password')} {given}: set it to the password Redis requires"
        ) from None
    except redis.RedisError:
        pass
    finally:
        client.close()


def check_process_settings(settings: Settings) -> None:
    """What a process using both Kubernetes and Redis checks at start."""
    check_kube_config(settings)
    check_redis_credentials(settings)
