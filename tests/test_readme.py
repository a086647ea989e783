"""The README's Python example runs as written, on the shipped pair."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


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
