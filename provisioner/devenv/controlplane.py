"""A local Kubernetes control plane: etcd and kube-apiserver, no kubelet (as envtest runs it).

The API server serves TLS on a free port with RBAC on; an admin kubeconfig (client
certificate in system:masters) is written next to the certificates.
"""

from __future__ import annotations

import base64
import ssl
import urllib.request
from pathlib import Path

import yaml

from provisioner.devenv.binaries import KubeBinaries
from provisioner.devenv.certs import ControlPlaneCerts, generate_certs
from provisioner.devenv.procs import ServerProcess, free_port

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


class LocalControlPlane:
    def __init__(self, state_dir: Path, binaries: KubeBinaries):
        self.state_dir = state_dir
        self.binaries = binaries
        self.etcd: ServerProcess | None = None
        self.apiserver: ServerProcess | None = None
        self.certs: ControlPlaneCerts | None = None
        self.apiserver_port = 0
        self.etcd_port = 0

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def start(self, timeout: float = 60.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.certs = generate_certs(self.state_dir / "pki")
        self._start_etcd(timeout)
        self.apiserver_port = free_port()
        self._start_apiserver(timeout)
        self._write_kubeconfig()

    def kill_apiserver(self) -> None:
        """Kill the API server alone, as in a crash of the control plane: it stops answering
        at once (a graceful stop drains open watches for seconds first). etcd keeps the
        cluster's state."""
        if self.apiserver is not None:
            self.apiserver.kill()

    def start_apiserver(self, timeout: float = 60.0) -> None:
        """Start the API server again on its port (the kubeconfig stays valid) and wait
        until it is ready. Nothing is done when it is running."""
        process = self.apiserver.process if self.apiserver is not None else None
        if process is not None and process.poll() is None:
            return
        self._start_apiserver(timeout)

    def _start_etcd(self, timeout: float) -> None:
        self.etcd_port = free_port()
        client_url = f"http://127.0.0.1:{self.etcd_port}"
        self.etcd = ServerProcess(
            "etcd",
            [
                str(self.binaries.etcd),
                "--data-dir",
                str(self.state_dir / "etcd"),
                "--listen-client-urls",
                client_url,
                "--advertise-client-urls",
                client_url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{free_port()}",
                # A throwaway store: durability is not worth a fsync per write here.
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
            self.state_dir / "logs" / "etcd.log",
        )
        self.etcd.start()
        self.etcd.wait_ready(lambda: _http_ok(f"{client_url}/health"), timeout)

    def _start_apiserver(self, timeout: float) -> None:
        assert self.certs is not None
        certs = self.certs
        self.apiserver = ServerProcess(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # Loopback cannot be published as the kubernetes Service endpoint; nothing
                # here needs that endpoint.
                "--endpoint-reconciler-type=none",
                f"--secure-port={self.apiserver_port}",
                f"--tls-cert-file={certs.serving_cert}",
                f"--tls-private-key-file={certs.serving_key}",
                f"--client-ca-file={certs.ca_cert}",
                f"--cert-dir={self.state_dir / 'pki'}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={certs.sa_pub}",
                f"--service-account-signing-key-file={certs.sa_key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                # No controller-manager creates the default ServiceAccount, so its admission
                # plugin would refuse every pod.
                "--disable-admission-plugins=ServiceAccount",
                "--profiling=false",
                "--v=1",
            ],
            self.state_dir / "logs" / "kube-apiserver.log",
        )
        self.apiserver.start()
        self.apiserver.wait_ready(self._apiserver_ready, timeout)

    def _ssl_context(self) -> ssl.SSLContext:
        assert self.certs is not None
        context = ssl.create_default_context(cafile=str(self.certs.ca_cert))
        context.load_cert_chain(str(self.certs.admin_cert), str(self.certs.admin_key))
        return context

    def _apiserver_ready(self) -> bool:
        return _http_ok(f"{self.url}/readyz", self._ssl_context())

    def _write_kubeconfig(self) -> None:
        assert self.certs is not None

        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "provisioner-dev",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": b64(self.certs.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate-data": b64(self.certs.admin_cert),
                        "client-key-data": b64(self.certs.admin_key),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "provisioner-dev",
                    "context": {"cluster": "provisioner-dev", "user": "admin"},
                }
            ],
            "current-context": "provisioner-dev",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def stop(self) -> None:
        for server in (self.apiserver, self.etcd):
            if server is not None:
                server.stop()

    @property
    def pids(self) -> dict[str, int]:
        return {
            server.name: server.pid
            for server in (self.etcd, self.apiserver)
            if server is not None and server.pid is not None
        }


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    with urllib.request.urlopen(url, timeout=2, context=context) as response:
        status: int = response.status
        return status == 200
