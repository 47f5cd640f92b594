"""docs/OPERATIONS.md's configuration table names every environment variable the code reads,
and nothing it does not read."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "OPERATIONS.md"
CONFIG = ROOT / "server" / "config.py"
READERS = (CONFIG, ROOT / "tests" / "conftest.py")  # the tests read TEST_DATABASE_URL themselves

PREFIXED = re.compile(r"[\"'](FENGQIAO_[A-Z0-9_]+)[\"']")  # a string literal naming one of ours
ENVIRON = re.compile(r"(?:os\.environ\.get|os\.getenv)\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']|os\.environ\[\s*[\"']([A-Z][A-Z0-9_]*)[\"']")
ENVIRON_USE = re.compile(r"os\.environ|os\.getenv|environ\.get")


def documented() -> set[str]:
    """The variables in the first column of the table under '## Configuration'."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            first = line.split("|")[1]
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", first))
    names.discard("variable")
    return names


def read_by_code() -> set[str]:
    names = set()
    for path in READERS:
        source = path.read_text(encoding="utf-8")
        names |= set(PREFIXED.findall(source))
        names |= {a or b for a, b in ENVIRON.findall(source)}
    return names


def test_every_variable_read_is_documented_and_every_documented_one_is_read():
    doc, code = documented(), read_by_code()
    assert len(doc) > 50 and "DATABASE_URL" in code  # the parsers found the table and the reads
    assert sorted(code - doc) == [], "read by the code, missing from docs/OPERATIONS.md"
    assert sorted(doc - code) == [], "in docs/OPERATIONS.md, read by nothing"


def test_only_config_reads_the_environment():
    readers = [str(path.relative_to(ROOT)) for path in (ROOT / "server").rglob("*.py")
               if path != CONFIG and "node_modules" not in path.parts
               and ENVIRON_USE.search(path.read_text(encoding="utf-8"))]
    assert readers == []
