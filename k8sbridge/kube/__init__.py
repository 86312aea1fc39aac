"""The Kubernetes API seam: the only package that imports kopf, kubernetes or pykube."""
