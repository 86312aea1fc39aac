"""/etc/hosts, /etc/resolv.conf and /etc/hostname as the kubelet writes them (pure rendering:
kubelet_pods.go managedHostsFileContent, dns.go GetPodDNS, GetNodenameForKernel)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from k8sbridge.scheduler import podenv, podfiles

LOCALHOST = ("# Kubernetes-managed hosts file.\n"
             "127.0.0.1\tlocalhost\n"
             "::1\tlocalhost ip6-localhost ip6-loopback\n"
             "fe00::0\tip6-localnet\n"
             "fe00::0\tip6-mcastprefix\n"
             "fe00::1\tip6-allnodes\n"
             "fe00::2\tip6-allrouters\n")
DNS = podfiles.Network(pod_ips=("10.0.0.7",), cluster_dns=("10.96.0.10",),
                       cluster_domain="cluster.local")
NO_DNS = podfiles.Network(pod_ips=("10.0.0.7",))


def _pod(name: str = "web-0", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "shop", "uid": "u1"},
            "spec": {"containers": [{"name": "c"}], **spec}}


def _files(pod: dict[str, Any], network: podfiles.Network = DNS) -> dict[str, str]:
    return {path: data.decode() for path, data in podfiles.render(pod, network=network).files}


def test_a_plain_pod_gets_its_name_and_the_cluster_dns() -> None:
    files = _files(_pod())
    assert files == {
        "/etc/hosts": LOCALHOST + "10.0.0.7\tweb-0\n",
        "/etc/hostname": "web-0\n",
        "/etc/resolv.conf": "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
                            "nameserver 10.96.0.10\noptions ndots:5\n",
    }


def test_hostname_subdomain_and_host_aliases() -> None:
    pod = _pod(hostname="db", subdomain="backend", hostAliases=[
        {"ip": "192.0.2.1", "hostnames": ["foo.local", "bar.local"]},
        {"ip": "2001:db8::1", "hostnames": ["six"]}])
    files = _files(pod, podfiles.Network(pod_ips=("10.0.0.7",), cluster_dns=("10.96.0.10",),
                                         cluster_domain="k8s.test"))
    assert files["/etc/hosts"] == (
        LOCALHOST + "10.0.0.7\tdb.backend.shop.svc.k8s.test\tdb\n"
        "\n# Entries added by HostAliases.\n"
        "192.0.2.1\tfoo.local\tbar.local\n"
        "2001:db8::1\tsix\n")
    assert files["/etc/hostname"] == "db\n"
    assert files["/etc/resolv.conf"].startswith("search shop.svc.k8s.test svc.k8s.test k8s.test")


def test_set_hostname_as_fqdn_and_its_limit() -> None:
    pod = _pod(hostname="db", subdomain="backend", setHostnameAsFQDN=True)
    assert _files(pod)["/etc/hostname"] == "db.backend.shop.svc.cluster.local\n"
    long = _pod(hostname="d" * 34, subdomain="backend", setHostnameAsFQDN=True)
    with pytest.raises(podenv.LaunchError) as e:
        podfiles.render(long, network=DNS)
    assert str(e.value) == (
        "failed to construct FQDN from pod hostname and cluster domain, FQDN "
        f"{'d' * 34}.backend.shop.svc.cluster.local is too long (64 characters is the max, "
        "65 characters requested)")
    # without a subdomain there is no FQDN: the short name
    assert _files(_pod(setHostnameAsFQDN=True))["/etc/hostname"] == "web-0\n"


def test_hostname_override_and_truncation() -> None:
    files = _files(_pod(hostname="db", subdomain="backend", hostnameOverride="my.host"))
    assert files["/etc/hosts"].endswith("10.0.0.7\tmy.host\n")
    assert files["/etc/hostname"] == "my.host\n"
    long = _files(_pod(name="a" * 62 + "-b"))
    assert long["/etc/hostname"] == "a" * 62 + "\n"  # 63 characters, no trailing '-'


@pytest.mark.parametrize(("spec", "message"), [
    ({"hostname": "Bad_Name"}, 'pod Hostname "Bad_Name" is not a valid DNS label'),
    ({"subdomain": "a.b"}, 'pod Subdomain "a.b" is not a valid DNS label'),
    ({"hostnameOverride": "-x"}, 'pod HostnameOverride "-x" is not a valid DNS subdomain'),
    ({"hostAliases": [{"ip": "nope", "hostnames": ["x"]}]},
     "spec.hostAliases[0].ip 'nope' is not an IP address"),
    ({"dnsPolicy": "Sometimes"}, "spec.dnsPolicy 'Sometimes' is not a DNS policy (ClusterFirst, "
                                 "ClusterFirstWithHostNet, Default or None)"),
    ({"hostNetwork": True, "hostAliases": [{"ip": "192.0.2.1", "hostnames": ["x"]}]},
     "spec.hostAliases cannot be honoured with hostNetwork: the kubelet appends them to the "
     "node's /etc/hosts, which k8sbridge cannot read on an agent"),
    ({"dnsPolicy": "Default", "dnsConfig": {"searches": ["x"]}},
     "spec.dnsConfig cannot be honoured with the agent's own resolv.conf (dnsPolicy Default, "
     "hostNetwork with ClusterFirst, or ClusterFirst without scheduler.cluster_dns): the "
     "kubelet merges it into the node's file, which k8sbridge cannot read on an agent"),
], ids=["hostname", "subdomain", "override", "alias-ip", "policy", "hostnet-aliases",
        "default-config"])
def test_what_cannot_be_written_is_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(podenv.LaunchError) as e:
        podfiles.render(_pod(**spec), network=DNS)
    assert str(e.value) == message and e.value.reason == "CreateContainerConfigError"


def test_cluster_first_without_cluster_dns_falls_back_to_the_agents_file() -> None:
    result = podfiles.render(_pod(), network=NO_DNS)
    assert "/etc/resolv.conf" not in dict(result.files)
    (notice,) = result.notices
    assert notice.reason == "MissingClusterDNS"
    assert notice.message == (
        'pod: "web-0_shop(u1)". kubelet does not have ClusterDNS IP configured and cannot '
        'create Pod using "ClusterFirst" policy. Falling back to "Default" policy.')
    with pytest.raises(podenv.LaunchError, match="spec.dnsConfig cannot be honoured"):
        podfiles.render(_pod(dnsConfig={"options": [{"name": "ndots", "value": "2"}]}),
                        network=NO_DNS)


def test_dns_config_is_merged_as_the_kubelet_merges_it() -> None:
    pod = _pod(dnsConfig={"nameservers": ["10.96.0.10", "1.1.1.1"],
                          "searches": ["svc.cluster.local", "corp.example"],
                          "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    assert _files(pod)["/etc/resolv.conf"] == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "nameserver 10.96.0.10\nnameserver 1.1.1.1\noptions ndots:2 edns0\n")
    none = _pod(dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.53"],
                                             "searches": ["a.example"]})
    assert _files(none, NO_DNS)["/etc/resolv.conf"] == (
        "search a.example\nnameserver 192.0.2.53\n")


def test_dns_limits_cut_with_the_kubelets_warning() -> None:
    searches = [f"s{i}.example" for i in range(40)] + ["x" * 254]
    pod = _pod(dnsPolicy="None", dnsConfig={
        "nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"],
        "searches": searches})
    result = podfiles.render(pod, network=DNS)
    text = dict(result.files)["/etc/resolv.conf"].decode()
    assert text.count("nameserver ") == podfiles.MAX_NAMESERVERS
    kept = searches[:podfiles.MAX_SEARCH_PATHS]
    assert text.splitlines()[0] == "search " + " ".join(kept)
    assert [n.reason for n in result.notices] == ["DNSConfigForming", "DNSConfigForming"]
    assert result.notices[0].message == (
        "Nameserver limits were exceeded, some nameservers have been omitted, the applied "
        "nameserver line is: 192.0.2.1 192.0.2.2 192.0.2.3")
    assert result.notices[1].message.startswith("Search Line limits were exceeded")
    # a line over 2048 characters loses paths from its end
    wide = _pod(dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.1"],
                                             "searches": [f"{i:02d}" + "y" * 198 for i in
                                                          range(12)]})
    line = dict(podfiles.render(wide, network=DNS).files)["/etc/resolv.conf"].decode()
    assert len(line.splitlines()[0]) - len("search ") <= podfiles.MAX_SEARCH_CHARS
    assert line.splitlines()[0].split()[1:] == [f"{i:02d}" + "y" * 198 for i in range(10)]


def test_host_network_pods_keep_the_agents_files() -> None:
    assert _files(_pod(hostNetwork=True)) == {}
    with_net = _files(_pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"))
    assert list(with_net) == ["/etc/resolv.conf"]
    assert "nameserver 10.96.0.10" in with_net["/etc/resolv.conf"]
    assert _files(_pod(dnsPolicy="Default")).keys() == {"/etc/hosts", "/etc/hostname"}


def test_each_container_gets_the_files_unless_it_mounts_the_path() -> None:
    result = podfiles.render(_pod(), network=DNS)
    plain = podfiles.container_volumes(result, {"name": "c"})
    assert [v["container_path"] for v in plain] == ["/etc/hosts", "/etc/hostname",
                                                    "/etc/resolv.conf"]
    hosts = plain[0]
    assert hosts["mode"] == "RW" and hosts["source"]["type"] == "SECRET"
    assert base64.b64decode(hosts["source"]["secret"]["value"]["data"]).decode() == (
        LOCALHOST + "10.0.0.7\tweb-0\n")
    own = podfiles.container_volumes(result, {"name": "c", "volumeMounts": [
        {"name": "v", "mountPath": "/etc/hosts/"}]})
    assert [v["container_path"] for v in own] == ["/etc/hostname", "/etc/resolv.conf"]


def test_without_pod_files_what_needs_one_is_refused() -> None:
    off = podfiles.Network(pod_ips=("10.0.0.7",), enabled=False)
    result = podfiles.render(_pod(), network=off)
    assert result.files == () and [n.reason for n in result.notices] == ["MissingClusterDNS"]
    with pytest.raises(podenv.LaunchError) as e:
        podfiles.render(_pod(subdomain="x"), network=off)
    assert str(e.value) == f"spec.subdomain cannot be honoured: {podfiles.POD_FILES_OFF}"
    with pytest.raises(podenv.LaunchError, match="spec.dnsPolicy ClusterFirst cannot be"):
        podfiles.render(_pod(), network=podfiles.Network(cluster_dns=("10.96.0.10",),
                                                         enabled=False))
