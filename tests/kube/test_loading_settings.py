"""Settings precedence: flags > environment > YAML file > defaults; bad values are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8sbridge import settings as bridge_settings


def test_defaults_are_the_documented_ones() -> None:
    s = bridge_settings.load(env={})
    assert s.mesos.roles == ("kubernetes",)
    assert s.mesos.failover_timeout_seconds == 7 * 24 * 3600
    assert s.scheduler.scheduler_names == ("k8sbridge",)
    assert s.kubelet.port == 10250
    assert s.kubelet.node_taint == "virtual-kubelet.io/provider=mesos:NoSchedule"
    # The kubelet API: anonymous off, tokens checked with TokenReview, bind decided by the mode.
    assert s.kubelet.anonymous is False
    assert s.kubelet.token_review is True
    assert s.kubelet.token_cache_ttl_seconds == 120.0
    assert s.kubelet.host == ""


def test_file_then_env_then_flags_override_in_order(tmp_path: Path) -> None:
    cfg = tmp_path / "bridge.yaml"
    cfg.write_text(
        "mesos:\n  masters: [http://m1:5050, http://m2:5050]\n  roles: [a]\n"
        "kubelet:\n  port: 11000\n  anonymous: false\n"
        "scheduler:\n  scheduler_names: [x, y]\n"
    )
    env = {
        "K8SBRIDGE_MESOS_ROLES": "b,c",
        "K8SBRIDGE_KUBELET_PORT": "12000",
        "K8SBRIDGE_E2E_KUBECONFIG": "/ignored",  # not a settings section: ignored
    }
    s = bridge_settings.load(
        env=env, config_file=cfg, flags={"kubelet": {"port": 13000, "host": None}}
    )
    assert s.mesos.masters == ("http://m1:5050", "http://m2:5050")
    assert s.mesos.roles == ("b", "c")
    assert s.kubelet.port == 13000
    assert s.kubelet.host == ""  # a None flag does not override
    assert s.kubelet.anonymous is False
    assert s.scheduler.scheduler_names == ("x", "y")


def test_config_file_from_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kube:\n  namespace: bridge-ns\n  kubeconfig: ~/kc\n")
    s = bridge_settings.load(env={"K8SBRIDGE_CONFIG": str(cfg)})
    assert s.kube.namespace == "bridge-ns"
    assert s.kube.kubeconfig == Path("~/kc").expanduser()


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        pytest.param({"K8SBRIDGE_KUBELET_PORT": "ten"}, "kubelet.port", id="bad-int"),
        pytest.param({"K8SBRIDGE_KUBELET_ANONYMOUS": "maybe"}, "kubelet.anonymous", id="bad-bool"),
        pytest.param({"K8SBRIDGE_MESOS_ROLEZ": "a"}, "K8SBRIDGE_MESOS_ROLEZ", id="unknown-key"),
        pytest.param({"K8SBRIDGE_SCHEDULER_RANKING": "random"}, "ranking", id="bad-choice"),
        pytest.param({"K8SBRIDGE_MESOS_ROLES": ""}, "mesos.roles", id="empty-roles"),
        pytest.param({"K8SBRIDGE_KUBELET_TOKEN_CACHE_TTL_SECONDS": "-1"},
                     "kubelet.token_cache_ttl_seconds", id="negative-ttl"),
        pytest.param({"K8SBRIDGE_KUBELET_LOG_SAMPLE_SECONDS": "-2"},
                     "kubelet.log_sample_seconds", id="negative-sampling"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(bridge_settings.SettingsError, match=fragment.replace(".", r"\.")):
        bridge_settings.load(env=env)


def test_bad_file_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("mesos: [1, 2\n")
    with pytest.raises(bridge_settings.SettingsError, match="config file"):
        bridge_settings.load(env={}, config_file=cfg)
    cfg.write_text("nosuchsection:\n  a: 1\n")
    with pytest.raises(bridge_settings.SettingsError, match="unknown section"):
        bridge_settings.load(env={}, config_file=cfg)


def test_dump_then_load_gives_the_same_settings(tmp_path: Path) -> None:
    import dataclasses

    import yaml

    base = bridge_settings.load(env={
        "K8SBRIDGE_MESOS_ROLES": "a,b",
        "K8SBRIDGE_MESOS_PRINCIPAL": "p",
        "K8SBRIDGE_KUBE_KUBECONFIG": str(tmp_path / "kc"),
        "K8SBRIDGE_SCHEDULER_SEED": "7",
        "K8SBRIDGE_EMBEDDED_AGENT_RESOURCES": "cpus:64;mem:65536",
    })
    settings = dataclasses.replace(
        base, kubelet=dataclasses.replace(base.kubelet, client_ca_file=tmp_path / "ca.crt"))
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(bridge_settings.dump(settings)))
    assert bridge_settings.load(env={}, config_file=path) == settings
    assert bridge_settings.load(env={}).embedded.agent_resources == ""
