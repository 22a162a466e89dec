"""Create the pulumi-docker resources a program registered on a real Docker engine.

This stands in for the Pulumi engine and the pulumi-docker provider only because
neither the Pulumi CLI nor its engine can be installed on these machines. It honours
every input the program uses (image, command, uploads, volumes, networks with their
subnet and gateway, aliases and fixed addresses, /etc/hosts entries, ports, env,
healthcheck, restart, wait, labels, hostname, stopTimeout, destroyGraceSeconds, and for
one-shot containers mustRun, attach and logs) and raises
on any input it does not understand, so it cannot silently diverge from what the
program asks for.

What the engine and the provider do, and this applier does the same (sources):

- Independent resources are created, replaced and deleted in parallel; a resource
  waits only for what it depends on (`depends_on` or an input taken from another
  resource's output). The Python SDK registers a resource only once the URNs of its
  `depends_on` resources have resolved, which the engine does when their step is done
  (pulumi/pulumi sdk/python/lib/pulumi/runtime/resource.py, `_resolve_depends_on_urns`;
  the engine's step executor runs every ready step concurrently, `--parallel` defaulting
  to unbounded). Here: containers run on a thread pool, each as soon as its
  dependencies' steps have finished; nothing else orders them.
- A `depends_on` edge alone never makes the engine replace or delete the dependent when
  its dependency is replaced: only inputs that take the replaced resource's outputs do
  (pulumi/pulumi pkg/resource/deploy/step_generator.go, `calculateDependentReplacements`).
- Every container input is ForceNew in the provider's schema (pulumi-docker bridges
  kreuzwerker/terraform-provider-docker): a changed input, uploads included, replaces
  the container. Containers here have fixed names, so the program asks for
  `deleteBeforeReplace`: the old container is removed before the new one is created.
- Removing a container (kreuzwerker/terraform-provider-docker
  internal/provider/resource_docker_container_funcs.go, `resourceDockerContainerDelete`):
  unless `attach`, ContainerStop with `destroy_grace_seconds` as the timeout (0 when
  unset: SIGTERM and SIGKILL at once), then ContainerRemove with force and
  `remove_volumes` (default true: anonymous volumes only; named volumes stay).
- `wait: true`: the create step returns only once the container reports healthy;
  a dependent starts after that.
- Addresses (kreuzwerker/terraform-provider-docker internal/provider): a network's
  `ipam_config` becomes the IPAM.Config of NetworkCreate (subnet, ip_range, gateway;
  resource_docker_network_funcs.go); a container's `networks_advanced.ipv4_address`
  the IPAMConfig.IPv4Address of its endpoint and `host` the HostConfig.ExtraHosts
  entries `host:ip` (resource_docker_container_funcs.go).

One-shot containers (`attach: true`, `mustRun: false`) are started and waited for
until they exit; their logs are kept in `Applied.logs`. pulumi-docker does not fail on
a non-zero exit code; this applier does, so that a failed step fails the test. The
provider's behaviour, from kreuzwerker/terraform-provider-docker
internal/provider/resource_docker_container_funcs.go:

- create: the uploads are copied into the created container (CopyToContainer, one
  archive per upload, extracted at `/`, a path inside a mounted volume lands in the
  volume) before ContainerStart, with `CopyUIDGID: owner != "" || group != ""` in the
  CopyToContainerOptions (the upload loop of resourceDockerContainerCreate). With
  copyUIDGID Docker ignores the archive's owner and looks the container's `user` up,
  in the passwd database of the host on Docker 20.10 (moby daemon/archive_tarcopyoptions_unix.go,
  `tarCopyOptions` -> idtools.LookupUser): an upload with an owner fails on a host
  without that user, here as with the real provider; with `attach` the create step then blocks on
  ContainerWait(WaitConditionNotRunning), collecting the output when `logs` is set;
- read (the refresh after create, and every later `pulumi up`): a container that is
  not running counts as done when `must_run` is false, and its exit code is stored in
  the `exit_code` output, not raised (the program checks it: the secrets writers,
  components/docker/deployment.py);
- delete: an attached container is not stopped first, only force-removed.

So a one-shot container that is replaced (a changed input, e.g. the secrets writer of
a node whose passwords changed) runs once more, and whatever depends on it waits until
it has exited; nothing that merely depends on it is replaced.

`update` applies a second run of the program over the first, with the minimal diff
the engine would make for what the program uses: resources that did not exist are
created, containers whose inputs changed are replaced, unchanged ones are left alone.
A replaced one-shot container therefore runs again. Changed networks or volumes and
removed resources raise UnsupportedInput. (The second run must keep the first run's
generated passwords, as the engine keeps random resources: tests/support/updates.py.)

`destroy` is the tests' cleanup, not `pulumi destroy`: it force-removes everything an
apply created, whatever state it is in.
"""

from __future__ import annotations

import io
import re
import tarfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import docker.types

from tests.support.program import ProgramRun, Registered

NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
CONTAINER = "docker:index/container:Container"

_NETWORK_INPUTS = {"name", "driver", "labels", "ipamConfigs"}
_IPAM_INPUTS = {"subnet", "ipRange", "gateway"}
_VOLUME_INPUTS = {"name", "labels"}
_CONTAINER_INPUTS = {
    "name",
    "hostname",
    "image",
    "command",
    "uploads",
    "volumes",
    "networksAdvanced",
    "ports",
    "healthcheck",
    "restart",
    "wait",
    "waitTimeout",
    "labels",
    "envs",
    "mustRun",
    "attach",
    "logs",
    "stopTimeout",
    "destroyGraceSeconds",
    "user",
    "capabilities",
    "hosts",
}
_HOST_INPUTS = {"host", "ip"}
_CAPABILITY_INPUTS = {"adds", "drops"}
# How long a one-shot container may run before the applier gives up on it.
ONE_SHOT_TIMEOUT = 600
_UPLOAD_INPUTS = {"file", "content", "executable", "owner", "group", "permissions"}
_VOLUME_MOUNT_INPUTS = {"volumeName", "containerPath"}
_NETWORK_ATTACH_INPUTS = {"name", "aliases", "ipv4Address"}
_PORT_INPUTS = {"internal", "external", "ip"}
_HEALTHCHECK_INPUTS = {"tests", "interval", "timeout", "retries", "startPeriod"}


class UnsupportedInput(Exception):
    """The program used an input this applier does not implement."""


def _check(where: str, values: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise UnsupportedInput(f"{where}: inputs {unknown} are not implemented by the test applier")


def _labels(values: list[dict[str, str]] | None) -> dict[str, str]:
    return {item["label"]: item["value"] for item in values or []}


def _duration_ns(value: str) -> int:
    match = re.fullmatch(r"(\d+)(ms|s|m)", value)
    if match is None:
        raise UnsupportedInput(f"duration {value!r}")
    scale = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9}[match.group(2)]
    return int(match.group(1)) * scale


def _tar(path: str, content: str, executable: bool, owner: str = "", group: str = "", permissions: str = "") -> bytes:
    """A one-file tar archive extracted at `/`, as pulumi-docker builds it: the
    member carries the full path, so missing directories are created; `permissions`
    (octal) has precedence over `executable`; numeric `owner`/`group` (else root)."""
    data = content.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size = len(data)
        info.mode = int(permissions, 8) if permissions else (0o744 if executable else 0o644)
        for value in (owner, group):
            if value and not value.isdigit():
                raise UnsupportedInput(f"upload {path}: only numeric owner/group are implemented, not {value!r}")
        info.uid, info.gid = int(owner or 0), int(group or 0)
        info.mtime = int(time.time())
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class Applied:
    """What one apply created, so that it can all be removed."""

    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    # container name -> output of a one-shot container (`logs: true`), latest run
    logs: dict[str, str] = field(default_factory=dict)


def _dependencies(containers: list[Registered]) -> dict[str, set[str]]:
    """urn -> the urns of the containers it waits for; raises on a cycle."""
    urns = {c.urn for c in containers}
    deps = {c.urn: {d for d in c.dependencies if d in urns} for c in containers}
    done: set[str] = set()

    def visit(urn: str, path: tuple[str, ...]) -> None:
        if urn in done:
            return
        if urn in path:
            raise UnsupportedInput(f"dependency cycle through {urn}")
        for dep in deps[urn]:
            visit(dep, (*path, urn))
        done.add(urn)

    for urn in deps:
        visit(urn, ())
    return deps


def run_in_parallel(containers: list[Registered], step: Callable[[Registered], str | None]) -> list[str]:
    """Run `step` for every container as soon as the steps of its dependencies are done,
    concurrently otherwise, as the engine does. The first failure stops new steps from
    starting (running ones finish) and is raised. Returns the steps' results in the
    order they finished."""
    deps = _dependencies(containers)
    by_urn = {c.urn: c for c in containers}
    finished: set[str] = set()
    results: list[str] = []
    lock = threading.Lock()
    running: dict[Future[str | None], str] = {}
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=max(1, len(containers))) as pool:
        while True:
            if failure is None:
                for urn, waits_for in deps.items():
                    if urn not in finished and urn not in running.values() and waits_for <= finished:
                        running[pool.submit(step, by_urn[urn])] = urn
            if not running:
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                urn = running.pop(future)
                try:
                    result = future.result()
                except BaseException as error:  # noqa: BLE001 - re-raised below
                    failure = failure or error
                    continue
                with lock:
                    finished.add(urn)
                    if result:
                        results.append(result)
    if failure is not None:
        raise failure
    return results


class DockerApplier:
    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self.client = client or docker.from_env()
        self._lock = threading.Lock()

    def apply(self, run: ProgramRun, applied: Applied | None = None) -> Applied:
        """Create everything; on any failure the caller still gets `applied` filled
        with what exists, for `destroy`."""
        applied = applied if applied is not None else Applied()
        handled = {NETWORK, VOLUME, CONTAINER}
        for r in run.resources:
            if r.type.startswith("docker:") and r.type not in handled:
                raise UnsupportedInput(f"{r.type} ({r.name}) is not implemented by the test applier")
        for r in run.of_type(NETWORK):
            self.create_network(r, applied)
        for r in run.of_type(VOLUME):
            self.create_volume(r, applied)
        run_in_parallel(run.of_type(CONTAINER), lambda r: self.create_container(r, applied))
        return applied

    def update(self, run: ProgramRun, applied: Applied, previous: ProgramRun) -> list[str]:
        """Apply `run` over what `previous` created (see the module docstring);
        returns what was done, e.g. `created redis-ha-cluster-7`, `replaced ...`, in
        the order the steps finished."""
        handled = {NETWORK, VOLUME, CONTAINER}
        for r in run.resources:
            if r.type.startswith("docker:") and r.type not in handled:
                raise UnsupportedInput(f"{r.type} ({r.name}) is not implemented by the test applier")
        before = {(r.type, r.name): r for r in previous.resources if r.type in handled}
        now = {(r.type, r.name): r for r in run.resources if r.type in handled}
        removed = sorted(name for (_, name) in set(before) - set(now))
        if removed:
            raise UnsupportedInput(f"removing resources ({removed}) is not implemented by the test applier")
        actions: list[str] = []
        for token, create in ((NETWORK, self.create_network), (VOLUME, self.create_volume)):
            for r in run.of_type(token):
                old = before.get((token, r.name))
                if old is None:
                    create(r, applied)
                    actions.append(f"created {r.inputs['name']}")
                elif old.inputs != r.inputs:
                    raise UnsupportedInput(f"{r.name}: changing a {token} is not implemented by the test applier")

        def step(r: Registered) -> str | None:
            old = before.get((CONTAINER, r.name))
            if old is not None and old.inputs == r.inputs:
                return None
            if old is not None:
                self.remove_container(old)
            self.create_container(r, applied)
            return f"{'replaced' if old is not None else 'created'} {r.inputs['name']}"

        actions += run_in_parallel(run.of_type(CONTAINER), step)
        return actions

    def remove_container(self, r: Registered) -> None:
        """The provider's delete: stop with destroy_grace_seconds (0 when unset) unless
        attached, then force-remove with its anonymous volumes."""
        name = r.inputs["name"]
        try:
            if not r.inputs.get("attach"):
                self.client.api.stop(name, timeout=int(r.inputs.get("destroyGraceSeconds") or 0))
            self.client.api.remove_container(name, force=True, v=True)
        except docker.errors.NotFound:
            pass

    def create_network(self, r: Registered, applied: Applied) -> None:
        _check(r.name, r.inputs, _NETWORK_INPUTS)
        pools = []
        for c in r.inputs.get("ipamConfigs", []):
            _check(f"{r.name}.ipamConfigs", c, _IPAM_INPUTS)
            pools.append(
                docker.types.IPAMPool(subnet=c.get("subnet"), iprange=c.get("ipRange"), gateway=c.get("gateway"))
            )
        self.client.networks.create(
            r.inputs["name"],
            driver=r.inputs.get("driver", "bridge"),
            labels=_labels(r.inputs.get("labels")),
            ipam=docker.types.IPAMConfig(pool_configs=pools) if pools else None,
        )
        applied.networks.append(r.inputs["name"])

    def create_volume(self, r: Registered, applied: Applied) -> None:
        _check(r.name, r.inputs, _VOLUME_INPUTS)
        self.client.volumes.create(r.inputs["name"], labels=_labels(r.inputs.get("labels")))
        applied.volumes.append(r.inputs["name"])

    def _upload(self, container_id: str, archive: bytes, copy_uid_gid: bool) -> None:
        """CopyToContainer at `/` as the provider calls it (module docstring); docker-py's
        put_archive has no copyUIDGID parameter, so the same endpoint is called here."""
        api = self.client.api
        params = {"path": "/", "copyUIDGID": "true" if copy_uid_gid else "false"}
        response = api._put(api._url("/containers/{0}/archive", container_id), params=params, data=archive)
        api._raise_for_status(response)

    def create_container(self, r: Registered, applied: Applied) -> str:
        i = r.inputs
        _check(r.name, i, _CONTAINER_INPUTS)
        one_shot = bool(i.get("attach"))
        if one_shot and (i.get("mustRun", True) or i.get("wait")):
            raise UnsupportedInput(f"{r.name}: attach is implemented with mustRun false and without wait")
        if i.get("logs") and not one_shot:
            raise UnsupportedInput(f"{r.name}: logs is implemented for attached (one-shot) containers only")
        if i.get("mustRun") is False and not one_shot:
            raise UnsupportedInput(f"{r.name}: mustRun false is implemented for attached (one-shot) containers only")
        api = self.client.api
        binds = {}
        for v in i.get("volumes", []):
            _check(f"{r.name}.volumes", v, _VOLUME_MOUNT_INPUTS)
            binds[v["volumeName"]] = {"bind": v["containerPath"], "mode": "rw"}
        port_bindings = {}
        for p in i.get("ports", []):
            _check(f"{r.name}.ports", p, _PORT_INPUTS)
            port_bindings[f"{int(p['internal'])}/tcp"] = (p.get("ip", "0.0.0.0"), int(p["external"]))
        networks = i.get("networksAdvanced", [])
        for n in networks:
            _check(f"{r.name}.networksAdvanced", n, _NETWORK_ATTACH_INPUTS)
        if len(networks) > 1:
            raise UnsupportedInput(f"{r.name}: more than one network")
        extra_hosts = []
        for h in i.get("hosts", []):
            _check(f"{r.name}.hosts", h, _HOST_INPUTS)
            extra_hosts.append(f"{h['host']}:{h['ip']}")
        capabilities = i.get("capabilities", {})
        _check(f"{r.name}.capabilities", capabilities, _CAPABILITY_INPUTS)
        healthcheck = None
        if "healthcheck" in i:
            h = i["healthcheck"]
            _check(f"{r.name}.healthcheck", h, _HEALTHCHECK_INPUTS)
            healthcheck = {
                "test": h["tests"],
                "interval": _duration_ns(h.get("interval", "30s")),
                "timeout": _duration_ns(h.get("timeout", "30s")),
                "retries": int(h.get("retries", 3)),
                "start_period": _duration_ns(h.get("startPeriod", "0s")),
            }
        host_config = api.create_host_config(
            binds=binds or None,
            port_bindings=port_bindings or None,
            restart_policy={"Name": i["restart"]} if i.get("restart") else None,
            network_mode=networks[0]["name"] if networks else None,
            cap_add=capabilities.get("adds") or None,
            cap_drop=capabilities.get("drops") or None,
            extra_hosts=extra_hosts or None,
        )
        networking_config = None
        if networks:
            networking_config = api.create_networking_config(
                {
                    networks[0]["name"]: api.create_endpoint_config(
                        aliases=networks[0].get("aliases") or None, ipv4_address=networks[0].get("ipv4Address")
                    )
                }
            )
        created = api.create_container(
            image=i["image"],
            command=i.get("command"),
            name=i["name"],
            hostname=i.get("hostname"),
            user=i.get("user"),
            environment=i.get("envs"),
            labels=_labels(i.get("labels")),
            ports=[int(p["internal"]) for p in i.get("ports", [])] or None,
            healthcheck=healthcheck,
            host_config=host_config,
            networking_config=networking_config,
            stop_timeout=int(i["stopTimeout"]) if "stopTimeout" in i else None,
        )
        with self._lock:
            if i["name"] not in applied.containers:
                applied.containers.append(i["name"])
        # Uploads go in after create and before start, like the provider does.
        for u in i.get("uploads", []):
            _check(f"{r.name}.uploads", u, _UPLOAD_INPUTS)
            archive = _tar(
                u["file"],
                u["content"],
                bool(u.get("executable")),
                str(u.get("owner", "")),
                str(u.get("group", "")),
                str(u.get("permissions", "")),
            )
            self._upload(created["Id"], archive, bool(u.get("owner") or u.get("group")))
        api.start(created["Id"])
        if i.get("wait"):
            self.wait_healthy(i["name"], float(i.get("waitTimeout", 60)))
        if one_shot:
            self.wait_exited(i["name"], bool(i.get("logs")), applied)
        return f"created {i['name']}"

    def wait_exited(self, name: str, keep_logs: bool, applied: Applied) -> None:
        status = self.client.api.wait(name, timeout=ONE_SHOT_TIMEOUT)
        logs = self.client.api.logs(name).decode(errors="replace")
        if keep_logs:
            applied.logs[name] = logs
        if status.get("StatusCode") != 0:
            tail = "\n".join(logs.splitlines()[-40:])
            raise RuntimeError(f"one-shot container {name} exited with {status}; last logs:\n{tail}")

    def wait_healthy(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = self.client.api.inspect_container(name)["State"]
            if state.get("Health", {}).get("Status") == "healthy":
                return
            if not state.get("Running") and not state.get("Restarting"):
                break
            time.sleep(0.5)
        logs = self.client.api.logs(name, tail=30).decode(errors="replace")
        raise RuntimeError(f"container {name} not healthy within {timeout:.0f}s (state {state}); last logs:\n{logs}")

    def destroy(self, applied: Applied) -> list[str]:
        """Remove everything `applied` lists; returns the errors, never raises."""
        errors = []
        for name in reversed(applied.containers):
            try:
                # v=True also removes anonymous volumes (the official image's VOLUME /data).
                self.client.api.remove_container(name, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as error:
                errors.append(f"container {name}: {error}")
        for name in applied.volumes:
            try:
                self.client.volumes.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as error:
                errors.append(f"volume {name}: {error}")
        for name in applied.networks:
            try:
                self.client.networks.get(name).remove()
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as error:
                errors.append(f"network {name}: {error}")
        return errors
