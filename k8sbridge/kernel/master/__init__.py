"""The embedded Mesos-compatible master: scheduler API, operator API, registry, agent link."""
