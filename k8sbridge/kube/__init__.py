"""The Kubernetes API seam: the only package that imports kopf or kubernetes.

Watches are kopf's (``operator.py``); every other call, reads included, goes through
``client.KubeClient`` (credentials from the official client, aiohttp on the wire in ``wire.py``,
priority-ordered connection slots, the errors of ``errors.py``).
"""
