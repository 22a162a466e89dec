"""Every container log of a namespace kept while pods come and go (a rolling update
deletes a pod, and its log with it, before anyone can ask `kubectl logs --previous`):
each new pod's containers are followed (`kubectl logs -f --timestamps`) into a file."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.k8s.api import Api


class PodLogs:
    """`with PodLogs(api, ns, env, out_dir) as logs:` ... `logs.lines(pattern)`."""

    def __init__(self, api: Api, namespace: str, env: dict[str, str], out_dir: Path) -> None:
        self.api, self.namespace, self.env, self.out_dir = api, namespace, env, out_dir
        self.followed: dict[str, subprocess.Popen[bytes]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> PodLogs:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        for process in self.followed.values():
            process.terminate()
        for process in self.followed.values():
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()

    def _follow(self, pod: dict[str, Any]) -> None:
        name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
        for container in pod["spec"].get("containers", []):
            key = f"{name}.{uid[:8]}.{container['name']}"
            if key in self.followed:
                continue
            with open(self.out_dir / f"{key}.log", "wb") as out:
                self.followed[key] = subprocess.Popen(
                    ["kubectl", "logs", "-f", "--timestamps", name, "-c", container["name"], "-n", self.namespace],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                )

    def _watch(self) -> None:
        while not self.stop.is_set():
            try:
                for pod in self.api.list("v1", "Pod", self.namespace):
                    running = (pod.get("status") or {}).get("containerStatuses") or []
                    if any("running" in (c.get("state") or {}) for c in running):
                        self._follow(pod)
            except Exception as error:  # a transient API error: keep watching
                print(f"pod logs: {error}")
            self.stop.wait(0.5)

    def lines(self, *words: str) -> list[str]:
        """Every kept line holding one of `words` (all lines without), timestamp-sorted,
        each prefixed with its file's name (pod.uid.container)."""
        found = []
        for path in sorted(self.out_dir.glob("*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if not words or any(word in line for word in words):
                    stamp, _, rest = line.partition(" ")
                    found.append((stamp, f"{stamp} [{path.stem}] {rest}"))
        return [text for _, text in sorted(found)]
