"""runner-provisioner: fast, leak-free ephemeral GitHub Actions runners on Kubernetes."""

__version__ = "0.1.0"
