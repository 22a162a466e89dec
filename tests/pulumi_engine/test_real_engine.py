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

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi import automation as auto
from redis_ha.components import security
from redis_ha.components.settings_load import load_settings
from redis_ha.components.settings_roles import password_key

from redis_ha.engine import stack_program
from tests.k8s.api import Api
from tests.support.engine_env import engine_env

pytestmark = pytest.mark.k8s

ROOT = Path(__file__).resolve().parents[2]
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


@dataclass
class Engine:
    project: Path
    env: dict[str, str]
    passwords: dict[str, str]
    api: Api
    pulumi_bin: Path
    results: dict[str, Any] = field(default_factory=dict)

    def stack(self) -> auto.Stack:
        """The stack through the Automation API, its program inline (skipAwait added)."""
        options = auto.LocalWorkspaceOptions(
            work_dir=str(self.project),
            env_vars=self.env,
            pulumi_command=auto.PulumiCommand(root=str(self.pulumi_bin.parent)),
        )
        return auto.select_stack(stack_name=STACK, project_name="redis-ha", program=skip_await_program, opts=options)

    def pulumi(self, *args: str, stdin: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        with open(stdin) if stdin else open(os.devnull) as feed:
            result = subprocess.run(
                ["pulumi", *args, "--non-interactive"],
                cwd=self.project,
                env=self.env,
                stdin=feed,
                capture_output=True,
                text=True,
                timeout=900,
            )
        if check and result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
            pytest.fail(f"pulumi {' '.join(args)} exited {result.returncode}:\n{tail}", pytrace=False)
        return result


def _project(dest: Path) -> Path:
    """A project directory with Pulumi.yaml only (the stack file is written below)."""
    dest.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", dest / "Pulumi.yaml")
    return dest


@pytest.fixture(scope="module")
def engine(pulumi_bin: Path, control_plane: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    tmp = tmp_path_factory.mktemp("pulumi-engine")
    project = _project(tmp / "project")
    path = [str(pulumi_bin), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    env, secret_dir = engine_env(tmp, path)
    kubeconfig = control_plane.state / "admin.kubeconfig"
    eng = Engine(project, env, {}, control_plane, pulumi_bin)
    eng.pulumi("login", env["PULUMI_BACKEND_URL"])
    eng.pulumi("stack", "init", STACK, "--secrets-provider", "passphrase")
    stack_file = project / f"Pulumi.{STACK}.yaml"
    stack = yaml.safe_load(stack_file.read_text()) or {}
    config = dict(yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"])
    config["redis-ha:namespace"] = NAMESPACE
    config["kubernetes:kubeconfig"] = str(kubeconfig)
    stack["config"] = config
    stack_file.write_text(yaml.safe_dump(stack, sort_keys=False))
    # Every user's password, application roles included: with none generated, the
    # program needs no pulumi-random provider.
    settings = load_settings({k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("redis-ha:")})
    for user in security.user_names(settings):
        value = secrets.token_urlsafe(24)
        eng.passwords[user] = value
        path = secret_dir / user
        path.write_text(value)
        eng.pulumi("config", "set", "--secret", f"redis-ha:{password_key(user)}", stdin=path)
        path.unlink()
    try:
        yield eng
    finally:
        listed = eng.pulumi("stack", "ls", "--json", check=False).stdout
        if f'"{STACK}' in listed and not eng.results.get("destroyed"):
            try:
                eng.stack().destroy()
            except auto.CommandError as error:
                print(f"cleanup destroy failed: {str(error)[-500:]}")
        eng.pulumi("stack", "rm", "--yes", "--force", STACK, check=False)


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
    text = engine.pulumi("stack", "export", "--stack", STACK).stdout
    assert "4dabf18193072939515e22adb298388d" in text  # secret envelopes exist
    for user, value in engine.passwords.items():
        assert value not in text, f"{user}'s password in plain text in the stack state"
        digest = hashlib.sha256(value.encode()).hexdigest()
        assert digest not in text, f"{user}'s password hash in plain text in the stack state"


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
