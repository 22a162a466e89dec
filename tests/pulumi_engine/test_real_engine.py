"""The prod stack under the real Pulumi engine (scripts/pulumi/build.sh: the CLI and the
pulumi-kubernetes provider built from Go modules), against a control plane of its own
(conftest.py). The program runs inline through the Automation API, as `redis-ha up`
runs it (redis_ha/engine.py): no Python language host.

In a project directory holding only Pulumi.yaml and the stack file: a temporary stack
`prod-e2e` on a local file backend, whose config is Pulumi.prod.yaml's plus every
password as a secret (set through stdin with `pulumi config set`), the cluster's
kubeconfig and a namespace of its own. Then preview (the provider's server-side dry
runs), `up`, `stack export`, the project's own `redis-ha preview`, and `destroy` +
`stack rm`, asserting on the engine's events and on the objects in the API.

Without a node no pod becomes ready, so the provider would wait for the StatefulSets
(and Services) until its timeout. The test's inline program therefore adds the
pulumi-kubernetes annotation `pulumi.com/skipAwait: "true"` to every Kubernetes
resource (a resource transform) before it calls the product's program; the product
never has it. What `up` proves here is that the engine creates every object through
server-side apply, not that pods run.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pulumi
import pytest
import yaml
from pulumi import automation as auto
from redis_ha.components.settings_roles import password_key

from redis_ha.engine import stack_program
from tests.k8s.api import Api
from tests.support.engine_stack import SECRET_SIG, Engine, new_engine, plain_passwords

pytestmark = pytest.mark.k8s

STACK = "prod-e2e"
NAMESPACE = "redis-ha-e2e"


def _skip_await(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    if not args.type_.startswith("kubernetes:") or args.type_.startswith("pulumi:providers:"):
        return None
    props = dict(args.props)
    metadata = props.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    annotations = metadata.get("annotations")
    annotations = dict(annotations) if isinstance(annotations, dict) else {}
    annotations["pulumi.com/skipAwait"] = "true"
    metadata["annotations"] = annotations
    props["metadata"] = metadata
    return pulumi.ResourceTransformResult(props, args.opts)


def skip_await_program() -> None:
    """Test only: the product's program (redis_ha.stack.run) after a skipAwait transform."""
    pulumi.runtime.register_resource_transform(_skip_await)
    stack_program()()


EXPECTED_CREATES = {
    "kubernetes:core/v1:Namespace",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:core/v1:Service",
    "kubernetes:policy/v1:PodDisruptionBudget",
    "kubernetes:core/v1:Secret",
    "kubernetes:core/v1:ConfigMap",
    "kubernetes:networking.k8s.io/v1:NetworkPolicy",
}
# What `up` must leave in the namespace (api version, kind), each applied by the provider.
EXPECTED_OBJECTS = (
    ("apps/v1", "StatefulSet"),
    ("v1", "Service"),
    ("policy/v1", "PodDisruptionBudget"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
)


@pytest.fixture(scope="module")
def engine(pulumi_bin: Path, control_plane: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    tmp = tmp_path_factory.mktemp("pulumi-engine")
    eng = new_engine(tmp, pulumi_bin, control_plane, STACK, skip_await_program, {"namespace": NAMESPACE})
    try:
        yield eng
    finally:
        eng.remove()


def test_stack_config_holds_passwords_only_as_secrets(engine: Engine) -> None:
    text = (engine.project / f"Pulumi.{STACK}.yaml").read_text()
    config = yaml.safe_load(text)["config"]
    for user, value in engine.passwords.items():
        assert value not in text
        assert set(config[f"redis-ha:{password_key(user)}"]) == {"secure"}


def _planned(engine: Engine) -> tuple[set[tuple[str, str]], list[str]]:
    """(op, type) of every step a preview plans, and the error diagnostics."""
    steps: set[tuple[str, str]] = set()
    errors: list[str] = []

    def on_event(event: auto.EngineEvent) -> None:
        if event.resource_pre_event is not None:
            meta = event.resource_pre_event.metadata
            steps.add((str(getattr(meta.op, "value", meta.op)), meta.type))
        if event.diagnostic_event is not None and event.diagnostic_event.severity == "error":
            errors.append(event.diagnostic_event.message)

    try:
        engine.stack().preview(on_event=on_event)
    except auto.CommandError as error:
        pytest.fail(f"preview failed: {str(error)[-2000:]}; diagnostics {errors}", pytrace=False)
    return steps, errors


def test_preview_plans_every_object(engine: Engine) -> None:
    steps, errors = _planned(engine)
    assert not errors, errors
    creates = {t for op, t in steps if op == "create"}
    assert creates >= EXPECTED_CREATES, EXPECTED_CREATES - creates
    # The configured passwords: no RandomPassword to create (no pulumi-random plugin here).
    assert "random:index/randomPassword:RandomPassword" not in creates
    engine.results["preview"] = steps


def test_up_applies_every_object_server_side(engine: Engine) -> None:
    engine.stack().up()
    engine.results["up"] = True
    for api_version, kind in EXPECTED_OBJECTS:
        objects = engine.api.list(api_version, kind, namespace=NAMESPACE)
        assert objects, f"no {kind} in {NAMESPACE} after up"
        for obj in objects:
            meta = obj["metadata"]
            if kind == "Secret" and meta.get("type") == "kubernetes.io/service-account-token":
                continue
            if kind == "ConfigMap" and meta["name"] == "kube-root-ca.crt":
                continue
            # The real provider applies under `pulumi-kubernetes-<random suffix>`, one
            # field manager per resource (tests/k8s's stand-in uses the bare prefix).
            managers = {m["manager"] for m in meta.get("managedFields", [])}
            assert any(m.startswith("pulumi-kubernetes") for m in managers), (kind, meta["name"], managers)
            assert meta.get("annotations", {}).get("pulumi.com/skipAwait") == "true", (kind, meta["name"])


def test_stack_export_has_no_plain_password(engine: Engine) -> None:
    if not engine.results.get("up"):
        pytest.skip("up did not run")
    text = engine.export_text()
    assert SECRET_SIG in text  # secret envelopes exist
    assert not plain_passwords(text, engine.passwords), "a password (or its hash) in plain text in the stack state"


def test_redis_ha_cli_preview(engine: Engine) -> None:
    """The project's own CLI (Automation API) on the built engine: no changes after up."""
    if not engine.results.get("up"):
        pytest.skip("up did not run")
    result = subprocess.run(
        [sys.executable, "-m", "redis_ha.cli", "preview", "--stack", STACK, "--project-dir", str(engine.project)],
        cwd=engine.project,
        env=engine.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert f"stack {STACK}" in result.stdout


def test_destroy_removes_every_object(engine: Engine) -> None:
    if not engine.results.get("up"):
        pytest.skip("up did not run")
    engine.stack().destroy()
    engine.results["destroyed"] = True
    for api_version, kind in EXPECTED_OBJECTS:
        left = [
            o["metadata"]["name"]
            for o in engine.api.list(api_version, kind, namespace=NAMESPACE)
            if any(m["manager"].startswith("pulumi-kubernetes") for m in o["metadata"].get("managedFields", []))
            and not o["metadata"].get("deletionTimestamp")
        ]
        assert not left, f"{kind} left after destroy: {left}"

    # The namespace is deleted (with skipAwait the provider does not wait for its
    # finalizers): gone, or terminating.
    def gone_or_terminating() -> bool:
        if not engine.api.exists("v1", "Namespace", NAMESPACE):
            return True
        return bool(engine.api.get("v1", "Namespace", NAMESPACE)["metadata"].get("deletionTimestamp"))

    assert gone_or_terminating()
    engine.pulumi("stack", "rm", "--yes", STACK)
    assert STACK not in engine.pulumi("stack", "ls", "--json").stdout
