"""The local development environment: kube-apiserver + etcd + redis-server, no cluster needed."""
