"""What the documentation names in the repository, and whether it exists.

Read by tests/unit/test_docs.py. A path counts only when it starts with a top-level
entry of the repository (`components/...`, `tests/...`, `.github/...`), so settings
keys, commands, container paths (`/data`) and Redis source files (`src/acl.c`) are
never taken for one. Hand-written rather than a Markdown parser: only inline code,
fenced blocks, links and headings matter, and a few regular expressions cover them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Entries of the root that are the machine's, not the repository's.
_NOT_REPOSITORY = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}

_FENCE_RE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN_RE = re.compile(r"`([^`\n]+)`")
# [text](target): the target up to the first space or ')'; images the same.
_LINK_RE = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
# A path-looking word: letters, digits and the characters file names here use, with
# `<placeholder>` and `*` standing for any name.
_WORD_RE = re.compile(r"[\w.*<>/-]+")


@dataclass(frozen=True)
class Problem:
    """One reference that does not resolve."""

    doc: str
    line: int
    reference: str
    why: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.reference}: {self.why}"


def top_level_names(root: Path) -> frozenset[str]:
    """The names a repository path may start with."""
    names = (p.name for p in root.iterdir())
    return frozenset(n for n in names if n not in _NOT_REPOSITORY and not n.endswith(".egg-info"))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> frozenset[str]:
    """Every heading anchor of a document, numbered like GitHub's when repeated."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, line in _prose_lines(markdown):
        match = _HEADING_RE.match(line)
        if match is None:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return frozenset(out)


def _prose_lines(markdown: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(markdown.splitlines(), start=1):
        if _FENCE_RE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def _code_lines(markdown: str) -> Iterator[tuple[int, str]]:
    """(line number, line) inside fenced code blocks."""
    prose = {number for number, _ in _prose_lines(markdown)}
    for number, line in enumerate(markdown.splitlines(), start=1):
        if number not in prose and not _FENCE_RE.match(line):
            yield number, line


def _as_path(word: str, tops: frozenset[str]) -> str | None:
    """`word` as a repository path, if it starts with a top-level name and a '/'."""
    word = word.strip().rstrip(".,;:")
    first = word.split("/", 1)[0]
    if "/" not in word or first not in tops:
        return None
    return word


def path_exists(root: Path, path: str) -> bool:
    """Whether `path` (with `<placeholder>` and `*` as wildcards) names something."""
    pattern = re.sub(r"<[^>/]*>", "*", path.rstrip("/"))
    if "*" in pattern:
        return any(root.glob(pattern))
    return (root / pattern).exists()


def named_paths(markdown: str, tops: frozenset[str]) -> Iterator[tuple[int, str]]:
    """(line, path) of every repository path a document names: the first word of an
    inline code span, and any word of a fenced code block (`bash tests/run.sh`)."""
    for number, line in _prose_lines(markdown):
        for span in _CODE_SPAN_RE.findall(line):
            words = span.split()
            path = _as_path(words[0], tops) if words else None
            if path is not None:
                yield number, path
    for number, line in _code_lines(markdown):
        line = re.sub(r"<br\s*/?>", " ", line)  # Mermaid's line breaks
        for match in _WORD_RE.finditer(line):
            start = match.start()
            if start > 0 and line[start - 1] in ":/@$":  # part of a URL or variable
                continue
            path = _as_path(match.group(), tops)
            if path is not None:
                yield number, path


def links(markdown: str) -> Iterator[tuple[int, str]]:
    """(line, target) of every relative link (no scheme, no mail address)."""
    for number, line in _prose_lines(markdown):
        for target in _LINK_RE.findall(_CODE_SPAN_RE.sub("", line)):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                yield number, target


def check_document(root: Path, doc: Path, tops: frozenset[str] | None = None) -> list[Problem]:
    """Every path and link of `doc` that does not resolve in the repository at `root`."""
    tops = top_level_names(root) if tops is None else tops
    text = doc.read_text(encoding="utf-8")
    name = doc.relative_to(root).as_posix() if doc.is_relative_to(root) else doc.name
    problems = [
        Problem(name, number, path, "no such file or directory")
        for number, path in named_paths(text, tops)
        if not path_exists(root, path)
    ]
    for number, target in links(text):
        file_part, _, anchor = target.partition("#")
        target_file = (doc.parent / file_part).resolve() if file_part else doc
        if file_part and not target_file.exists():
            problems.append(Problem(name, number, target, "link to a missing file"))
            continue
        if anchor and target_file.suffix == ".md" and anchor not in anchors(target_file.read_text(encoding="utf-8")):
            problems.append(Problem(name, number, target, f"no heading #{anchor} in {target_file.name}"))
    return problems


def check_documents(root: Path, docs: Iterable[Path]) -> list[Problem]:
    tops = top_level_names(root)
    return [problem for doc in docs for problem in check_document(root, doc, tops)]
