"""The Kubernetes API seam: the only package that imports kopf or kubernetes.

Watches are kopf's (``operator.py``); every other call, reads included, goes through
``client.KubeClient`` (the official client's transport, one priority-ordered thread pool, the
errors of ``errors.py``).
"""
