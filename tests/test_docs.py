"""The user guide and the READMEs: every relative link resolves inside the repository, nothing points at
material outside it, and docs/errors.md lists every code the gateway answers."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT

from gateway.errors import ERROR_CODES

LINKED_PAGES = [ROOT / "README.md", ROOT / "client" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The product contract lived outside the repository, in a sibling directory; a clone has neither. Written as a
# pattern so that a search of the project for such references does not find this test itself.
OUTSIDE = re.compile(r"\.\./shar[e]d|S[P]EC\.md")
OAUTH_ERRORS = ("invalid_request", "invalid_client", "unsupported_grant_type")

_FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def _prose(page: Path) -> str:
    return _INLINE_CODE.sub("", _FENCED.sub("", page.read_text()))


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = _HEADING.findall(_FENCED.sub("", page.read_text()))
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def _markdown_files() -> list[Path]:
    return sorted(
        path for path in ROOT.rglob("*.md")
        if not any(part.startswith(".") or part in ("var", "node_modules") for part in path.relative_to(ROOT).parts)
    )


@pytest.mark.parametrize("page", LINKED_PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(page: Path) -> None:
    for target in _LINK.findall(_prose(page)):
        if _SCHEME.match(target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.is_relative_to(ROOT.resolve()), f"{page.name}: {target} leaves the repository"
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{page.name}: {target} names no heading"


def test_no_markdown_file_refers_to_material_outside_the_repository() -> None:
    for page in _markdown_files():
        text = page.read_text()
        found = OUTSIDE.search(text)
        assert found is None, f"{page.relative_to(ROOT)} mentions {found and found.group()}"


def test_the_errors_page_lists_every_code_with_its_status() -> None:
    text = (ROOT / "docs" / "errors.md").read_text()
    for code, (status, _) in ERROR_CODES.items():
        assert f"| `{code}` | {status} |" in text, code
    for error in OAUTH_ERRORS:
        assert f"| `{error}` |" in text, error
