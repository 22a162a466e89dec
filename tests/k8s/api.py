"""A small client for the local Kubernetes API (scripts/k8s/start.sh), over `requests`.

It speaks to the apiserver with the admin client certificate start.sh wrote into its
state dir, and does what the tests need: discovery (kind -> resource), server-side
apply, reads, lists, create and delete, and polling.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

T = TypeVar("T")


class ApiError(Exception):
    def __init__(self, method: str, url: str, response: requests.Response) -> None:
        self.status = response.status_code
        try:
            self.body: dict[str, Any] = response.json()
        except ValueError:
            self.body = {"message": response.text}
        self.message = str(self.body.get("message", response.text))
        super().__init__(f"{method} {url}: {self.status} {self.message}")


@dataclass
class Resource:
    group_version: str  # "v1", "apps/v1"
    plural: str
    namespaced: bool


@dataclass
class Api:
    """The apiserver at `server`, authenticated by the client cert of a start.sh state dir."""

    server: str
    state: Path
    session: requests.Session = field(default_factory=requests.Session)
    _resources: dict[tuple[str, str], Resource] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pki = self.state / "pki"
        # Not the environment's CA bundle (REQUESTS_CA_BUNDLE would override `verify`)
        # nor its proxies: only this apiserver, on 127.0.0.1.
        self.session.trust_env = False
        self.session.verify = str(pki / "ca.crt")
        self.session.cert = (str(pki / "admin.crt"), str(pki / "admin.key"))

    # --- plumbing ---------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = self.server + path
        kwargs.setdefault("timeout", 30)
        response = self.session.request(method, url, **kwargs)
        if response.status_code >= 400:
            raise ApiError(method, path, response)
        return response.json() if response.content else {}

    def ready(self) -> bool:
        try:
            return self.session.get(self.server + "/readyz", timeout=3).text == "ok"
        except requests.RequestException:
            return False

    def resource(self, api_version: str, kind: str, refresh: bool = False) -> Resource:
        """The REST resource of `kind` in `api_version`, from discovery (so plurals and
        scopes are the server's, CRDs included)."""
        key = (api_version, kind)
        if key not in self._resources or refresh:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            for r in self.request("GET", base)["resources"]:
                if "/" not in r["name"]:
                    self._resources[(api_version, r["kind"])] = Resource(api_version, r["name"], r["namespaced"])
        if key not in self._resources:
            raise KeyError(f"the server has no {kind} in {api_version}")
        return self._resources[key]

    def path(self, api_version: str, kind: str, name: str | None = None, namespace: str | None = None) -> str:
        r = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        ns = f"/namespaces/{namespace}" if r.namespaced and namespace else ""
        return f"{base}{ns}/{r.plural}" + (f"/{name}" if name else "")

    # --- verbs ------------------------------------------------------------------------
    def apply(self, manifest: dict[str, Any], field_manager: str = "pulumi-kubernetes", force: bool = True) -> dict:
        """Server-side apply: PATCH application/apply-patch+yaml (JSON is YAML)."""
        meta = manifest["metadata"]
        path = self.path(manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace"))
        return self.request(
            "PATCH",
            path,
            params={"fieldManager": field_manager, "force": "true" if force else "false"},
            data=json.dumps(manifest),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self.request("GET", self.path(api_version, kind, name, namespace))

    def exists(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        try:
            self.get(api_version, kind, name, namespace)
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            raise

    def list(self, api_version: str, kind: str, namespace: str | None = None, **params: str) -> list[dict]:
        return self.request("GET", self.path(api_version, kind, namespace=namespace), params=params)["items"]

    def create(self, manifest: dict[str, Any], **params: str) -> dict[str, Any]:
        meta = manifest["metadata"]
        path = self.path(manifest["apiVersion"], manifest["kind"], namespace=meta.get("namespace"))
        return self.request("POST", path, json=manifest, params=params)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        try:
            path = self.path(api_version, kind, name, namespace)
            self.request("DELETE", path, params={"propagationPolicy": "Background"})
        except ApiError as e:
            if e.status != 404:
                raise


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60, interval: float = 0.5) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except ApiError as e:
            last = e
        if last and not isinstance(last, ApiError):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
