"""k8sbridge: run Kubernetes pods on an offer-based cluster kernel (Apache Mesos v1 API).

Why one package: the Mesos framework (scheduler) and the virtual kubelet share one process and
one view of the cluster; the embedded stand-ins (kernel/, devkube/) ship beside them so the
product can be tried and tested without Mesos or a Kubernetes cluster.
"""

__version__ = "0.1.0"
