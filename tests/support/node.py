"""The npm packages the JavaScript tests need (tests/node/package.json), installed once."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.procs import ROOT

NODE_DIR = ROOT / "tests" / "node"
WANTED = ("ws/package.json", "react/umd/react.development.js", "react-dom/umd/react-dom.development.js")


def node_modules() -> Path:
    assert shutil.which("node") and shutil.which("npm"), "node and npm are needed (Debian: nodejs, npm)"
    modules = NODE_DIR / "node_modules"
    if not all((modules / wanted).is_file() for wanted in WANTED):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True, timeout=300)
    return modules
