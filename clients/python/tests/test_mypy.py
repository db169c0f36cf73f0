"""The package (and the example worker that uses it) pass ``mypy --strict``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT.parents[1] / "examples" / "python" / "worker.py"


def test_mypy_strict(tmp_path: Path) -> None:
    targets = [str(ROOT / "src" / "floodgate_client")]
    if EXAMPLE.exists():
        targets.append(str(EXAMPLE))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         "--config-file", str(ROOT / "pyproject.toml"), *targets],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
