"""The documentation names only what exists: every repository path in README.md and
docs/*.md, every relative link and the heading each #anchor points at; the README
stays short; the layout in docs/development.md covers every directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.doc_paths import anchors, check_document, check_documents, named_paths, slug, top_level_names

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
README_MAX_LINES = 300


def test_every_named_path_and_link_resolves() -> None:
    problems = check_documents(ROOT, DOCS)
    assert not problems, "stale references in the documentation:\n" + "\n".join(map(str, problems))


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; at most {README_MAX_LINES}: move detail to docs/"


def test_the_documents_name_paths() -> None:
    """The check sees something: the README names the deploy and test scripts."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = {path for _, path in named_paths(readme, top_level_names(ROOT))}
    assert {"scripts/deploy.sh", "tests/run.sh"} <= found


def _tracked_directories() -> set[str]:
    try:
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the layout is compared with `git ls-files`")
    return {str(Path(f).parent) for f in files if str(Path(f).parent) != "."}


def test_layout_names_every_directory() -> None:
    """docs/development.md's layout names every directory that holds a tracked file."""
    text = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    named = {path.rstrip("/") for _, path in named_paths(text, top_level_names(ROOT))}
    missing = sorted(d for d in _tracked_directories() if d not in named)
    assert not missing, "directories missing from the layout in docs/development.md: " + ", ".join(missing)


# --- the checker itself, on samples it must reject -----------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "settings.py").write_text("")
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    (tmp_path / "tests" / "unit" / "test_backup_rdb.py").write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "ops.md").write_text("# Operations\n\n## Rotating passwords\n\n## Day 2: what `up` does\n")
    return tmp_path


def _problems(repo: Path, text: str) -> list[str]:
    doc = repo / "docs" / "sample.md"
    doc.write_text(text)
    return [p.reference for p in check_document(repo, doc)]


def test_checker_accepts_what_exists(repo: Path) -> None:
    text = (
        "See `components/settings.py`, `tests/unit/test_backup_*.py`, `tests/unit/test_<part>.py` and `tests/`.\n"
        "[ops](ops.md), [rotation](ops.md#rotating-passwords), [day 2](ops.md#day-2-what-up-does), [here](#a).\n"
        "# A\n"
        "```sh\nbash components/settings.py --x\n```\n"
    )
    assert _problems(repo, text) == []


def test_checker_rejects_a_renamed_file(repo: Path) -> None:
    assert _problems(repo, "The model is in `components/setting.py`.\n") == ["components/setting.py"]


def test_checker_rejects_a_missing_path_in_a_code_block(repo: Path) -> None:
    assert _problems(repo, "```sh\nbash tests/run.sh -k x\n```\n") == ["tests/run.sh"]


def test_checker_rejects_a_glob_that_matches_nothing(repo: Path) -> None:
    assert _problems(repo, "`tests/unit/test_rdb_*.py`\n") == ["tests/unit/test_rdb_*.py"]


def test_checker_rejects_bad_links_and_anchors(repo: Path) -> None:
    text = "[a](missing.md) [b](ops.md#no-such-heading) [c](#nowhere) [d](../components/gone.py)\n"
    assert _problems(repo, text) == ["missing.md", "ops.md#no-such-heading", "#nowhere", "../components/gone.py"]


def test_checker_ignores_what_is_not_a_repository_path(repo: Path) -> None:
    text = (
        "`redis-ha:backupTarget` `/data` `src/acl.c` `redis.conf` `pulumi config set redis-ha:x 1` "
        "[site](https://example.com/components/x.py) `s3://bucket/components/x`\n"
        "```yaml\nurl: redis://components/x.py\npath: $HOME/components/y\n```\n"
    )
    assert _problems(repo, text) == []


def test_slug_and_repeated_headings() -> None:
    assert slug("Day 2: what `pulumi up` does on a change") == "day-2-what-pulumi-up-does-on-a-change"
    assert slug("`redis-ha` reference") == "redis-ha-reference"
    assert anchors("# Notes\n## Notes\n```\n# not a heading\n```\n") == {"notes", "notes-1"}
