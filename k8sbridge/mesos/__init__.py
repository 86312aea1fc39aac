"""The Mesos v1 HTTP API: wire model, RecordIO, and the async scheduler client."""
