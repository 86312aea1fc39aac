"""Cluster DNS: Kubernetes service discovery names and Mesos-DNS names for the kernel's tasks."""
