"""The prod program's Kubernetes resources, applied to a real apiserver the way the
Pulumi Kubernetes provider applies them.

The pulumi-kubernetes provider v4 manages resources with Server-Side Apply by default
("The v4 release of the Pulumi Kubernetes provider enables SSA by default", provider
config `enableServerSideApply`, see
https://www.pulumi.com/registry/packages/kubernetes/how-to-guides/managing-resources-with-server-side-apply/
and the v4 migration guide): each resource is a PATCH with content type
`application/apply-patch+yaml` under the field manager `pulumi-kubernetes`. That is
what these tests send, with force (conflicts resolved in our favour).

For every prod variant (Sentinel, Cluster, both; TLS on; monitoring on) the real program
runs under Pulumi's mocks (tests/support/program.py), and each `kubernetes:*`
registration is turned into its manifest and applied into a fresh namespace labelled
`pod-security.kubernetes.io/enforce=restricted`. A cluster (scripts/k8s, control plane
only unless its node stage runs) then shows what no schema check can: the apiserver
accepts every object, the StatefulSet and Job controllers create their pods and
PodSecurity admission admits them (without a kubelet they stay Pending), and the
disruption controller computes every PodDisruptionBudget's status. A last test proves
that the restricted namespace does refuse a non-compliant (privileged) pod.

ServiceMonitor and PrometheusRule (monitoring on) need the Prometheus Operator's CRDs:
minimal ones (group, kind, an open schema) are created first when the cluster has none.
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from tests.k8s.api import Api, ApiError, wait_for
from tests.support.k8s_cluster import (
    FIELD_MANAGER,
    TEST_MANAGER,
    create_restricted_namespace,
    delete_namespace,
    manifests_of,
)
from tests.support.program import mocked_tls_outputs, run_program, stack_config

pytestmark = pytest.mark.k8s

# Every prod variant the program knows: topology, TLS, monitoring.
VARIANTS: dict[str, dict[str, str]] = {
    "sentinel": {},
    "cluster": {"topology": "cluster"},
    "both": {"topology": "both"},
    "tls": {"tls": "true"},
    "monitoring": {"monitoring": "true"},
    # TLS is for the Sentinel topology only (the program refuses it with cluster/both).
    "tls-monitoring": {"tls": "true", "monitoring": "true"},
    "both-monitoring": {"topology": "both", "monitoring": "true"},
    # A backup worker per part: a CronJob, its Secret and ConfigMap (object storage: no claim).
    "both-backup": {
        "topology": "both",
        "backupTarget": "s3",
        "backupS3Endpoint": "http://s3.invalid:9000",
        "backupS3Bucket": "redis-backups",
        "backupS3AccessKeyId": "Test-Access-Key-1",
        "backupS3SecretAccessKey": "Test-Secret-Access-Key-1",
    },
}

MONITORING_CRDS = {
    "ServiceMonitor": "servicemonitors",
    "PrometheusRule": "prometheusrules",
}


# --- the program's manifests ---------------------------------------------------------


def program_manifests(variant: str, namespace: str) -> list[dict[str, Any]]:
    config = {**stack_config("prod"), **VARIANTS[variant], "namespace": namespace}
    if config.get("tls") == "true":
        with mocked_tls_outputs():
            return manifests_of(run_program(config, stack="prod"))
    return manifests_of(run_program(config, stack="prod"))


# --- the cluster side ----------------------------------------------------------------


def unique_namespace(variant: str) -> str:
    return f"rh-ssa-{variant}-{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def monitoring_crds(k8s: Api) -> Iterator[None]:
    """Minimal CRDs for the Prometheus Operator's kinds the program registers, unless
    the cluster already serves them; removed at the end if they were made here."""
    made = []
    for kind, plural in MONITORING_CRDS.items():
        name = f"{plural}.monitoring.coreos.com"
        if k8s.exists("apiextensions.k8s.io/v1", "CustomResourceDefinition", name):
            continue
        k8s.apply(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": name},
                "spec": {
                    "group": "monitoring.coreos.com",
                    "scope": "Namespaced",
                    "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "storage": True,
                            "schema": {
                                "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                            },
                        }
                    ],
                },
            },
            field_manager=TEST_MANAGER,
        )
        made.append(name)

        def established(crd: str = name) -> bool:
            live = k8s.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd)
            conditions = live.get("status", {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        wait_for(f"CRD {name} established", established)
    for kind in MONITORING_CRDS:
        wait_for(f"discovery of {kind}", partial(k8s.resource, "monitoring.coreos.com/v1", kind, refresh=True))
    yield
    for name in made:
        k8s.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)


@dataclass
class Applied:
    variant: str
    namespace: str
    manifests: list[dict[str, Any]]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # "Kind/name" -> object
    errors: dict[str, str] = field(default_factory=dict)  # "Kind/name" -> message

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.manifests if m["kind"] == kind]


def key(m: dict[str, Any]) -> str:
    return f"{m['kind']}/{m['metadata']['name']}"


@pytest.fixture(scope="module", params=list(VARIANTS))
def applied(request: pytest.FixtureRequest, k8s: Api) -> Iterator[Applied]:
    variant = request.param
    namespace = unique_namespace(variant)
    manifests = program_manifests(variant, namespace)
    if any(m["kind"] in MONITORING_CRDS for m in manifests):
        request.getfixturevalue("monitoring_crds")
    create_restricted_namespace(k8s, namespace)
    out = Applied(variant, namespace, manifests)
    try:
        for m in manifests:
            try:
                out.results[key(m)] = k8s.apply(m, field_manager=FIELD_MANAGER, force=True)
            except ApiError as e:
                out.errors[key(m)] = f"{e.status} {e.message}"
        yield out
    finally:
        delete_namespace(k8s, namespace)


# --- helpers over what the controllers did -------------------------------------------


def pods_owned_by(api: Api, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
    return [
        p
        for p in api.list("v1", "Pod", namespace)
        if any(o["kind"] == kind and o["name"] == name for o in p["metadata"].get("ownerReferences", []))
    ]


def failed_creates(api: Api, namespace: str) -> list[str]:
    return [
        f"{e['involvedObject']['kind']}/{e['involvedObject']['name']}: {e.get('message', '')}"
        for e in api.list("v1", "Event", namespace)
        if e.get("reason") == "FailedCreate"
    ]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if selector.get("matchExpressions"):
        raise NotImplementedError("matchExpressions")
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


# --- tests ---------------------------------------------------------------------------


def test_every_manifest_is_accepted_by_server_side_apply(applied: Applied) -> None:
    assert applied.manifests, "the program registered no Kubernetes resources"
    assert applied.errors == {}
    for m in applied.manifests:
        managers = applied.results[key(m)]["metadata"].get("managedFields", [])
        assert any(f["manager"] == FIELD_MANAGER and f["operation"] == "Apply" for f in managers), key(m)


def test_statefulset_controller_creates_admitted_pods(applied: Applied, k8s: Api) -> None:
    statefulsets = applied.of_kind("StatefulSet")
    assert statefulsets
    for sts in statefulsets:
        name, replicas = sts["metadata"]["name"], sts["spec"]["replicas"]
        # OrderedReady would make pod 0 only until it is Ready (never, without a kubelet).
        expected = replicas if sts["spec"].get("podManagementPolicy") == "Parallel" else 1

        def created(n: str = name, e: int = expected) -> list[dict[str, Any]] | None:
            pods = pods_owned_by(k8s, applied.namespace, "StatefulSet", n)
            return pods if len(pods) >= e else None

        pods = wait_for(f"{expected} pods of StatefulSet {name}", created)
        assert sorted(p["metadata"]["name"] for p in pods) == sorted(f"{name}-{i}" for i in range(expected))

        # The controller writes its status after it created the pods: wait for it too.
        def counted(n: str = name, e: int = expected) -> dict[str, Any] | None:
            status = k8s.get("apps/v1", "StatefulSet", n, applied.namespace).get("status", {})
            return status if status.get("replicas") == e else None

        wait_for(f"the status of StatefulSet {name} to count {expected} replicas", counted)
    assert failed_creates(k8s, applied.namespace) == []


def test_job_controller_creates_its_pod(applied: Applied, k8s: Api) -> None:
    jobs = applied.of_kind("Job")
    # Only the Redis Cluster has a one-shot step (its creation).
    assert bool(jobs) == (VARIANTS[applied.variant].get("topology", "sentinel") != "sentinel"), applied.variant
    for job in jobs:
        name = job["metadata"]["name"]
        wait_for(f"the pod of Job {name}", partial(pods_owned_by, k8s, applied.namespace, "Job", name))
    assert failed_creates(k8s, applied.namespace) == []


def test_a_job_from_each_backup_cronjob_gets_its_pod_admitted(applied: Applied, k8s: Api) -> None:
    """What `redis-ha backup` does on Kubernetes (`kubectl create job --from=cronjob/...`):
    the Job controller creates the pod, and the restricted namespace admits it."""
    cronjobs = applied.of_kind("CronJob")
    assert bool(cronjobs) == ("backupTarget" in VARIANTS[applied.variant]), applied.variant
    for cronjob in cronjobs:
        name = cronjob["metadata"]["name"]
        live = k8s.get("batch/v1", "CronJob", name, applied.namespace)
        assert live["spec"]["schedule"] == cronjob["spec"]["schedule"]
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": f"{name}-now", "namespace": applied.namespace},
            "spec": live["spec"]["jobTemplate"]["spec"],
        }
        k8s.apply(job, field_manager="redis-ha-test")
        wait_for(f"the pod of Job {name}-now", partial(pods_owned_by, k8s, applied.namespace, "Job", f"{name}-now"))
    assert failed_creates(k8s, applied.namespace) == []


def test_disruption_controller_computes_every_pdb_status(applied: Applied, k8s: Api) -> None:
    pdbs = applied.of_kind("PodDisruptionBudget")
    assert pdbs
    for pdb in pdbs:
        name = pdb["metadata"]["name"]

        def computed(n: str = name, selector: dict[str, Any] = pdb["spec"]["selector"]) -> dict[str, Any] | None:
            live = k8s.get("policy/v1", "PodDisruptionBudget", n, applied.namespace)
            status = live.get("status", {})
            pods = k8s.list("v1", "Pod", applied.namespace)
            selected = [p for p in pods if selects(selector, p["metadata"].get("labels", {}))]
            current = status.get("observedGeneration") == live["metadata"]["generation"]
            return status if current and selected and status.get("expectedPods") == len(selected) else None

        status = wait_for(f"the status of PodDisruptionBudget {name}", computed)
        # No pod runs without a kubelet: none is healthy, so none may be disrupted.
        assert status["disruptionsAllowed"] == 0, status
        assert any(c["type"] == "DisruptionAllowed" for c in status.get("conditions") or []), status


def _pod_from_template(sts: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    template = copy.deepcopy(sts["spec"]["template"])
    spec = template["spec"]
    # The claim templates become plain volumes: a bare pod must declare what it mounts.
    declared = {v["name"] for v in spec.get("volumes", [])}
    for claim in sts["spec"].get("volumeClaimTemplates", []):
        if claim["metadata"]["name"] not in declared:
            spec.setdefault("volumes", []).append({"name": claim["metadata"]["name"], "emptyDir": {}})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"test": "pod-security"}},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def restricted_namespace(k8s: Api) -> Iterator[str]:
    namespace = unique_namespace("admission")
    create_restricted_namespace(k8s, namespace)
    yield namespace
    delete_namespace(k8s, namespace)


def test_restricted_namespace_refuses_a_privileged_pod(k8s: Api, restricted_namespace: str) -> None:
    """Admission bites: the prod pod template passes `restricted` as it is, and the same
    pod with one container made privileged is refused by PodSecurity admission."""
    sts = next(m for m in program_manifests("sentinel", restricted_namespace) if m["kind"] == "StatefulSet")
    compliant = _pod_from_template(sts, restricted_namespace, "compliant")
    k8s.create(compliant, dryRun="All")

    privileged = _pod_from_template(sts, restricted_namespace, "privileged")
    first = privileged["spec"]["containers"][0]
    first.setdefault("securityContext", {})["privileged"] = True
    first["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(ApiError) as refused:
        k8s.create(privileged, dryRun="All")
    assert refused.value.status == 403, refused.value
    assert re.search(r'violates PodSecurity "restricted:latest".*privileged', refused.value.message), refused.value
