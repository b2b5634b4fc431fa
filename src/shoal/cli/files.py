"""Reading the YAML (or JSON) files the CLI is given, with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shoal.errors import ConfigError

__all__ = ["read_yaml"]


def read_yaml(path: Path, missing_ok: bool = False) -> Any:
    """The file's data; None when it is missing and missing_ok."""
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        if missing_ok:
            return None
        raise ConfigError(f"cannot read {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.MarkedYAMLError as exc:
        where = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise ConfigError(f"{path}: not valid YAML or JSON: {exc.problem}{where}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML or JSON: {str(exc).splitlines()[0]}") from None
