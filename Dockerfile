# The bridge as a container image, for manifests/deploy/ (the bridge alone against real Mesos
# masters and the cluster it runs in). Build from the repository root:
#   docker build -t REGISTRY/k8sbridge:0.1.0 .
FROM python:3.11-slim

WORKDIR /src
COPY pyproject.toml README.md ./
COPY k8sbridge ./k8sbridge
RUN pip install --no-cache-dir . && rm -rf /src

WORKDIR /
# Matches the Deployment's runAsUser; the bridge needs no privileges and no writable root.
USER 65532:65532
ENTRYPOINT ["k8sbridge"]
CMD ["run", "--help"]
