"""params.yaml access for stage commands.

Every stage option defaults to None; `Params.pick` then falls back to the dotted key in
params.yaml, so a stage runs under DVC with no flags and outside DVC on other files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

DEFAULT_PARAMS = Path("params.yaml")
ParamsOption = typer.Option(DEFAULT_PARAMS, "--params", help="params.yaml to take defaults from")


class Params:
    def __init__(self, data: dict[str, Any], source: Path):
        self.data = data
        self.source = source

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PARAMS) -> Params:
        path = Path(path)
        if not path.exists():
            return cls({}, path)
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise typer.BadParameter(f"{path} must hold a YAML mapping at the top level")
        return cls(data, path)

    def get(self, key: str, default: Any = ...) -> Any:
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                if default is ...:
                    raise typer.BadParameter(
                        f"{self.source} has no `{key}`; add it or pass the option explicitly"
                    )
                return default
            node = node[part]
        return node

    def pick(self, value: Any, key: str, default: Any = ...) -> Any:
        """The explicit CLI value when given, else params.yaml's `key`."""
        return value if value is not None else self.get(key, default)
