"""Profiles: the shipped compressor profile, the derived feature spec, and clear errors for bad YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from altaviz.profiles import ProfileError, builtin_profiles, feature_spec, load_profile, parse_duration
from altaviz.profiles.loader import _locate

COMPRESSOR = Path(str(_locate("compressor")))


def compressor_dict() -> dict:
    return yaml.safe_load(COMPRESSOR.read_text())


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "custom.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_compressor_profile_uses_engineering_figures():
    p = load_profile("compressor")
    assert "compressor" in builtin_profiles()
    vib = p.sensors["vibration_mms"]
    assert (vib.unit, vib.warning.high, vib.critical.high) == ("mm/s", 7.1, 11.2)
    temp = p.sensors["discharge_temp_f"]
    assert (temp.warning.high, temp.critical.high) == (275.0, 300.0)
    assert p.sensors["horsepower"].relative_to == "rated_horsepower"
    assert p.id_column == "compressor_id"


def test_feature_spec_is_derived_from_the_profile():
    spec = feature_spec(load_profile("compressor"))
    names = spec.columns
    assert len([f for f in spec.rolling]) == 6 * 3 * 3
    assert "discharge_pressure_psi_24h_std" in names
    assert "gas_flow_mcfd_1h_delta" in names
    assert {"pressure_differential", "pressure_ratio", "health_status", "is_weekend"} <= set(names)
    assert spec.lookback.total_seconds() == 86400


def test_a_new_equipment_type_is_just_yaml(tmp_path):
    data = compressor_dict()
    data["name"] = "pump"
    data["sensors"] = {
        "flow_gpm": {
            "unit": "gpm",
            "physical_range": [0, 5000],
            "normal_band": [100, 900],
            "warning": {"low": 50},
        }
    }
    data["features"] = {"windows": ["30m", "2h"], "stats": ["mean", "min"], "rate_of_change": None}
    spec = feature_spec(load_profile(write(tmp_path, data)))
    assert [f.name for f in spec.rolling] == [
        "flow_gpm_30m_mean",
        "flow_gpm_30m_min",
        "flow_gpm_2h_mean",
        "flow_gpm_2h_min",
    ]
    assert spec.rates == ()


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["sensors"]["vibration_mms"].update(physical_range=[10, 1]),
            "sensors.vibration_mms.physical_range",
        ),
        (
            lambda d: d["sensors"]["vibration_mms"].update(warning={"high": 12.0}),
            "warning.high (12.0) must be below",
        ),
        (lambda d: d["sensors"]["vibration_mms"].pop("unit"), "sensors.vibration_mms.unit"),
        (lambda d: d["sensors"]["vibration_mms"].update(colour="red"), "sensors.vibration_mms.colour"),
        (lambda d: d["features"].update(windows=["1 hour"]), "features.windows"),
        (lambda d: d["features"]["derived"]["pressure_ratio"].update(left="nope"), "'nope' is not a sensor"),
        (
            lambda d: d["sensors"]["horsepower"].update(relative_to="rated_kw"),
            "'rated_kw' is not a metadata column",
        ),
        (
            lambda d: d["sensors"]["discharge_temp_f"].update(critical={"high": 900.0}),
            "outside physical_range",
        ),
        (lambda d: d.update(sensors={}), "expected at least one sensor"),
    ],
)
def test_bad_profiles_name_file_field_and_problem(tmp_path, mutate, expected):
    data = compressor_dict()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert str(path) in message and expected in message


def test_malformed_yaml_and_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(write(tmp_path, "sensors: [unclosed"))
    with pytest.raises(ProfileError, match="expected a mapping"):
        load_profile(write(tmp_path, "- a list"))
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "nope.yaml")
    with pytest.raises(ProfileError, match="unknown"):
        load_profile("turbine")


def test_parse_duration():
    assert parse_duration("10m").total_seconds() == 600
    assert parse_duration("24h").total_seconds() == 86400
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration("ten minutes")
