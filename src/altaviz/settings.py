"""Typed settings: `ALTAVIZ_*` environment variables, then an optional `altaviz.toml`, then defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    """Where Altaviz keeps its data and which services it talks to.

    data_root: everything Altaviz writes by default (simulated raw data, lake, embedded PostgreSQL data dir).
    lake_root: the Delta Lake root; defaults to `<data_root>/lake`.
    database_url: a PostgreSQL URL; when unset, Altaviz starts its own embedded server under the data root.
    engine: which engine renders the lake stages.
    """

    model_config = SettingsConfigDict(env_prefix="ALTAVIZ_", toml_file="altaviz.toml", extra="ignore")

    data_root: Path = Path(".altaviz")
    lake_root: Path | None = None
    database_url: str | None = None
    engine: Literal["polars", "spark"] = "polars"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def lake(self) -> Path:
        return self.lake_root if self.lake_root is not None else self.data_root / "lake"

    @property
    def pgdata(self) -> Path:
        return self.data_root / "postgres"


def get_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
