"""Leader election between bridge replicas with a ``coordination.k8s.io/v1`` Lease.

``election`` decides (pure), ``lease`` reads and writes the Lease, ``elector`` runs the loop."""
