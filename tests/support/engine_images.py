"""The engine test images pinned in tests/images/engines.txt, as the matrix test and
the settings of a deployment on them need them: tag, engine, engineVersion."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.e2e_stack import REDIS_IMAGE

ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = ROOT / "tests/images/engines.txt"
# redis-ha-test/<engine>:<major>.<minor>[.<patch>]
_TAG_RE = re.compile(r"^redis-ha-test/(redis|valkey):(\d+\.\d+)(?:\.\d+)?$")


@dataclass(frozen=True)
class EngineImage:
    tag: str
    engine: str
    version: str  # engineVersion: major.minor
    suite: str

    @property
    def id(self) -> str:
        return self.tag.rsplit("/", 1)[-1].replace(":", "-")

    def settings(self) -> dict[str, str]:
        """The config keys of a deployment on this image."""
        return {"engine": self.engine, "engineVersion": self.version, "redisImage": self.tag}


def engine_images() -> list[EngineImage]:
    images = []
    for line in VERSIONS_FILE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        tag, suite = line.split()[:2]
        match = _TAG_RE.match(tag)
        if match is None:
            raise ValueError(f"{VERSIONS_FILE}: tag {tag!r} is not redis-ha-test/<redis|valkey>:<major.minor>[.patch]")
        images.append(EngineImage(tag, match.group(1), match.group(2), suite))
    return images


def build(*tags: str) -> None:
    """Build (or find cached) the images of `tags` with tests/images/engines.sh."""
    subprocess.run(["bash", str(ROOT / "tests/images/engines.sh"), *tags], check=True, stdout=subprocess.DEVNULL)


def selected_images() -> list[EngineImage]:
    """The rows REDIS_HA_ENGINES asks for (ids such as valkey-9.1, comma-separated);
    unset or `all`: every row. An unknown id is an error, not an empty matrix."""
    images = engine_images()
    wanted = {w for w in os.environ.get("REDIS_HA_ENGINES", "").split(",") if w and w != "all"}
    unknown = wanted - {i.id for i in images}
    if unknown:
        raise ValueError(f"REDIS_HA_ENGINES: {sorted(unknown)} not in {[i.id for i in images]} (or: all)")
    return [i for i in images if not wanted or i.id in wanted]


def matrix_params(images: list[EngineImage]) -> list[Any]:
    """The matrix's rows as pytest params. The row of the e2e's own image
    (tests/support/e2e_stack.REDIS_IMAGE) is skipped, saying why: every other e2e
    module deploys that engine, so its row would run the same drills a second time."""
    return [
        pytest.param(
            image,
            id=image.id,
            marks=[pytest.mark.skip(reason=f"{image.tag} is the e2e's own image: the whole e2e runs this engine")]
            if image.tag == REDIS_IMAGE
            else [],
        )
        for image in images
    ]
