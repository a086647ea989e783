"""The README is a front page that works: its Python example runs as written on the shipped pair, it stays
short, and every link in it and in docs/ leads somewhere that exists."""

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_LINES = 160

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`]*`")
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def _prose(text: str) -> str:
    """The page without its fenced code blocks (a '#' there is a comment, a '](' is code)."""
    return FENCE.sub("", text)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation other than '-' and '_' dropped, spaces to '-',
    a repeated anchor numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(_prose(path.read_text())):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _links(path: Path) -> list[str]:
    return LINK.findall(CODE_SPAN.sub("", _prose(path.read_text())))


def _relative(link: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", link, re.I)  # http:, https:, mailto: ...


def test_readme_api_example_runs():
    text = README.read_text()
    section = text.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    s = namespace["s"]
    assert s.shape == (4, 80)
    assert namespace["refused"][2] and namespace["refused"][3]  # the shipped pair refuses direct harmful requests
    assert s[:2, -1].mean() > s[2:, -1].mean()  # benign ends compliance-like, harmful refusal-like


def test_readme_is_a_front_page():
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move detail into docs/ (at most {MAX_README_LINES})"
    assert DOCS, "docs/ holds no page"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for link in _links(page):
        if not _relative(link):
            continue
        target, _, anchor = link.partition("#")
        dest = (page.parent / target).resolve() if target else page
        if not dest.exists():
            broken.append(f"{link}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{link}: no heading #{anchor} in {dest.name} (has: {sorted(_anchors(dest))})")
        elif not dest.is_relative_to(ROOT):
            broken.append(f"{link}: leaves the repository")
    assert not broken, f"broken links in {page.name}:\n" + "\n".join(broken)


def test_every_doc_is_linked_from_the_readme_or_another_doc():
    linked = set()
    for page in PAGES:
        for link in _links(page):
            target = link.partition("#")[0]
            if _relative(link) and target:
                dest = (page.parent / target).resolve()
                if dest != page.resolve():
                    linked.add(dest)
    orphans = [p.name for p in DOCS if p.resolve() not in linked]
    assert not orphans, f"docs pages nothing links to: {orphans}"


def test_the_headline_table_is_the_results_table():
    """The README's headline table is a copy of the one in docs/results.md: a re-run updates both."""
    results = (ROOT / "docs" / "results.md").read_text().splitlines()
    section = README.read_text().split("\n## Headline", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows, "the README has no headline table"
    missing = [row for row in rows if row not in results]
    assert not missing, "README table rows not in docs/results.md:\n" + "\n".join(missing)


def _resolves(dotted: str) -> bool:
    """A `srilab.x.y` name is a module, or an attribute of the longest module prefix."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if found and i == len(parts):
            return True  # a module: found without running it
        if found:
            obj = importlib.import_module(name)
            for attr in parts[i:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
    return False


def test_module_paths_named_in_the_docs_exist():
    """Every `srilab.package.module` the pages name exists: a module moved is a page to update."""
    names = sorted({m for page in PAGES for m in re.findall(r"\bsrilab(?:\.[A-Za-z_]\w*)+", page.read_text())})
    assert names
    stale = [name for name in names if not _resolves(name)]
    assert not stale, f"names in README.md / docs/ that do not exist: {stale}"
