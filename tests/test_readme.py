"""The README's Python example runs as written."""

import re
from pathlib import Path


def test_readme_python_snippet_runs():
    text = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    assert abs(namespace["gm"].mass(namespace["rho"]) - 1) < 1e-12
