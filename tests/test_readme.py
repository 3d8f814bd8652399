"""The README's Python snippets run as written (from the repository root)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_has_snippets():
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index, monkeypatch):
    code = SNIPPETS[index]
    if "../shared/data" in code and not (ROOT.parent / "shared" / "data").exists():
        pytest.skip("snippet reads ../shared/data, which is absent")
    monkeypatch.chdir(ROOT)
    exec(compile(code, f"README.md snippet {index + 1}", "exec"), {})
