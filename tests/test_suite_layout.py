"""The suite's own layout rules, checked so that `pytest tests` (CI's command) and one
directory at a time (a developer's) import the same helpers.

tests/tune and tests/ui each have a `conftest.py` imported as the top-level module
`conftest`; whichever directory was collected last owns that name when tests run.  An
import of `conftest` at module level runs during collection, while its own directory's
conftest is the one loaded; an import inside a test function runs later and may get
another directory's conftest (CI failed that way once: `cannot import name
'write_experiment' from 'conftest' (tests/ui/conftest.py)`)."""
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
LATE_IMPORT = re.compile(r"^[ \t]+(from conftest import|import conftest)\b", re.M)


def test_no_test_imports_conftest_after_collection():
    late = []
    for path in sorted(TESTS.rglob("*.py")):
        for m in LATE_IMPORT.finditer(path.read_text()):
            line = path.read_text()[: m.start()].count("\n") + 1
            late.append(f"{path.relative_to(TESTS)}:{line}")
    assert not late, f"import conftest at module level, not inside a function: {late}"


def test_the_rule_catches_an_indented_import():
    assert LATE_IMPORT.search("def t():\n    from conftest import write_experiment\n")
    assert not LATE_IMPORT.search("from conftest import write_experiment\n")
