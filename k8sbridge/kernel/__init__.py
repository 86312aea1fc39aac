"""The embedded offer-based kernel: a Mesos-compatible master, DRF allocator and agents."""
