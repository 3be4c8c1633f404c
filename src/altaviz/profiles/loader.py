"""Load asset profiles from YAML, with errors that name the file, the field and the problem."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from altaviz.errors import AltavizError
from altaviz.profiles.model import Profile


class ProfileError(AltavizError):
    """A profile file is missing, malformed or inconsistent."""


def builtin_profiles() -> list[str]:
    """Names of the profiles shipped inside the package."""
    return sorted(p.name[:-5] for p in resources.files(__package__).iterdir() if p.name.endswith(".yaml"))


def _locate(name_or_path: str | Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise ProfileError(f"profile file {candidate}: not found")
        return candidate
    shipped = resources.files(__package__) / f"{name_or_path}.yaml"
    if not shipped.is_file():
        raise ProfileError(
            f"profile {str(name_or_path)!r}: unknown (expected one of {builtin_profiles()} or a path to a .yaml file)"
        )
    return Path(str(shipped))


def parse_profile(text: str, source: str) -> Profile:
    """Parse and validate profile YAML text; `source` names the file in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"profile file {source}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"profile file {source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "<top level>"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"field {field}: {msg}")
        raise ProfileError(f"profile file {source}: " + "; ".join(problems)) from exc


@lru_cache(maxsize=32)
def _load_cached(path: str, mtime: float) -> Profile:
    return parse_profile(Path(path).read_text(encoding="utf-8"), path)


def load_profile(name_or_path: str | Path = "compressor") -> Profile:
    """Load a shipped profile by name ('compressor') or any profile YAML by path."""
    path = _locate(name_or_path)
    return _load_cached(str(path), path.stat().st_mtime)
