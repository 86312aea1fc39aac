"""devkube: a local Kubernetes control plane (API server + controllers) for dev and CI."""
