"""The virtual kubelet: nodes, leases, pod status, and the kubelet HTTPS API."""
