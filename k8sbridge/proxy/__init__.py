"""The service proxy (``k8sbridge proxy``): what kube-proxy does on a node in its nftables
mode, for a network with no kube-proxy (the embedded cluster network, or a Mesos agent host)."""
