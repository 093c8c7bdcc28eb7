"""Without the `server` extra (the thin-client install) the command says what to install, not a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Runs the CLI in a child interpreter where the server stack cannot be imported, as in a light venv.
_CHILD = textwrap.dedent(
    """
    import importlib.abc, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "sentence_transformers", "transformers", "scipy", "semver", "yaml"}:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
    from rag_factory.cli import main
    raise SystemExit(main(sys.argv[1:]))
    """
)


def test_a_server_command_without_the_server_extra_names_the_extra_to_install(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, "registry", "--registry", str(tmp_path), "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert 'pip install "rag-factory[server]"' in result.stderr
    assert "Traceback" not in result.stderr
