"""Fixed addresses on the Docker backend (components/docker/addresses.py): every
container other containers reach by name has a fixed address on its part's network,
and every container on that network finds every such name in its /etc/hosts, so no
lookup of a node's name goes to Docker's DNS (which forgets stopped containers and
forwards to the host's resolvers)."""

from __future__ import annotations

import ipaddress

import pulumi
import pytest

from tests.support.program import ProgramRun, Registered, run_program, stack_config

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"


def _kind(c: Registered) -> str:
    return next(label["value"] for label in c.inputs["labels"] if label["label"] == "redis-ha.kind")


def _check_addresses(run: ProgramRun) -> dict[str, ipaddress.IPv4Network]:
    """Checks every part network of `run`; returns network name -> subnet."""
    subnets = {}
    for network in run.of_type(NETWORK):
        [ipam] = network.inputs["ipamConfigs"]
        subnet = ipaddress.IPv4Network(ipam["subnet"])
        lower, upper = subnet.subnets(prefixlen_diff=1)
        assert ipam["ipRange"] == str(upper), "Docker hands out only the upper half"
        assert ipam["gateway"] == str(next(subnet.hosts()))
        subnets[network.inputs["name"]] = subnet
        on_network = [
            c
            for c in run.of_type(CONTAINER)
            if any(n["name"] == network.inputs["name"] for n in c.inputs.get("networksAdvanced", []))
        ]
        fixed = {}
        for c in on_network:
            [own] = [n for n in c.inputs["networksAdvanced"] if n["name"] == network.inputs["name"]]
            if "ipv4Address" in own:
                address = ipaddress.IPv4Address(own["ipv4Address"])
                assert address in lower and address != next(subnet.hosts()), (c.name, address)
                assert own["aliases"] == [c.inputs["name"]]
                fixed[c.inputs["name"]] = own["ipv4Address"]
            else:
                assert _kind(c) == "cluster-create", f"{c.name} has no fixed address"
        assert len(set(fixed.values())) == len(fixed), "two containers share an address"
        kinds = {_kind(c) for c in on_network if c.inputs["name"] in fixed}
        assert {"redis", "sentinel"} <= kinds or "cluster" in kinds, kinds
        # Every container on the network (the one-shot step too) has the same hosts
        # entries: every container's name at its address, each address once, and
        # reserved names (nodes a scale-up would add) at unused addresses.
        entries = {tuple((h["host"], h["ip"]) for h in c.inputs["hosts"]) for c in on_network}
        assert len(entries) == 1, "containers of one network disagree on /etc/hosts"
        hosts = dict(next(iter(entries)))
        assert len(set(hosts.values())) == len(hosts), "two names share an address"
        assert all(ipaddress.IPv4Address(ip) in lower for ip in hosts.values())
        assert {name: hosts.get(name) for name in fixed} == fixed
    return subnets


def test_dev_stack_nodes_have_fixed_addresses_and_every_name_in_etc_hosts() -> None:
    run = run_program({**stack_config("dev"), "backupTarget": "volume"}, stack="dev")
    [subnet] = _check_addresses(run).values()
    backup = next(c for c in run.of_type(CONTAINER) if _kind(c) == "backup")
    assert backup.inputs["name"] in {h["host"] for h in backup.inputs["hosts"]}
    # The default block is picked by the deployment's name: the same name, the same block.
    again = run_program(stack_config("dev"), stack="dev")
    assert list(_check_addresses(again).values()) == [subnet]
    assert subnet.subnet_of(ipaddress.IPv4Network("172.16.0.0/16"))


def test_configured_subnet_is_split_between_the_sentinel_group_and_the_cluster() -> None:
    config = {**stack_config("dev"), "topology": "both", "dockerSubnet": "10.77.4.0/22"}
    subnets = _check_addresses(run_program(config, stack="dev"))
    assert sorted(map(str, subnets.values())) == ["10.77.4.0/23", "10.77.6.0/23"]


def _placement(run: ProgramRun) -> dict[str, tuple]:
    """Container name -> the inputs that place it: networks (addresses) and hosts."""
    return {
        c.inputs["name"]: (c.inputs.get("networksAdvanced"), c.inputs.get("hosts"))
        for c in run.of_type(CONTAINER)
        if _kind(c) != "secrets-writer"
    }


@pytest.mark.parametrize(
    "change",
    [
        {"replicas": 3},
        {"sentinels": 5, "quorum": 3},
        {"exporter": False},
        {"backupTarget": "volume"},
        {"topology": "cluster", "clusterShards": 4},
    ],
    ids=["replica", "sentinels", "exporter-off", "backups-on", "cluster-shard"],
)
def test_scaling_or_adding_a_worker_keeps_every_address_and_hosts_entry(change: dict) -> None:
    """Every input is ForceNew: a changed address or hosts list would replace, so
    restart, every running container."""
    base = {**stack_config("dev"), "topology": change.get("topology", "sentinel")}
    before = _placement(run_program(base, stack="dev"))
    after_run = run_program({**base, **change}, stack="dev")
    _check_addresses(after_run)
    after = _placement(after_run)
    kept = set(before) & set(after)
    assert len(kept) >= 4
    assert {name: after[name] for name in kept} == {name: before[name] for name in kept}


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"dockerSubnet": "10.77.4.0/27"}, "an IPv4 network of /26 or larger"),
        ({"topology": "cluster", "dockerSubnet": "10.77.4.0/24"}, "an IPv4 network of /23 or larger"),
        ({"topology": "both", "dockerSubnet": "10.77.4.0/23"}, "an IPv4 network of /22 or larger"),
        ({"dockerSubnet": "10.77.4.7/24"}, "no host bits set"),
    ],
)
def test_a_subnet_too_small_or_malformed_fails_before_any_resource(override: dict, fragment: str) -> None:
    run = ProgramRun()
    with pytest.raises(pulumi.RunError, match="redis-ha:dockerSubnet") as caught:
        run_program({**stack_config("dev"), **override}, stack="dev", run=run)
    assert fragment in str(caught.value)
    assert run.resources == []
