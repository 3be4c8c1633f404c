"""C-MAPSS loader on the real FD001 files and on tiny synthetic files in the same format."""

import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from altaviz.ml.rul.cmapss import CmapssDataError, ConditionNormaliser, load_subset, operating_condition

DATA = Path(__file__).parents[1] / "data" / "cmapss"


def test_real_fd001_shapes_and_rul():
    sub = load_subset(DATA, "FD001")
    # sizes stated in the dataset description (100 + 100 engines, 20,631 + 13,096 rows)
    assert sub.train.height == 20631 and sub.test.height == 13096
    assert sub.train["unit"].n_unique() == 100 and sub.test["unit"].n_unique() == 100
    assert sub.test_rul.shape == (100,)
    # run-to-failure: the last training cycle of every engine has rul 0, the first has (length - 1)
    last = sub.train.group_by("unit").agg(pl.col("rul").min())
    assert (last["rul"] == 0).all()
    unit1 = sub.train.filter(sub.train["unit"] == 1)
    assert unit1["rul"][0] == unit1.height - 1
    # test rows end at the RUL file's value for that engine
    t1 = sub.test.filter(sub.test["unit"] == 1)
    assert t1["rul"][-1] == sub.test_rul[0]
    assert t1["rul"][0] == sub.test_rul[0] + t1.height - 1


def test_real_fd001_drops_the_flat_sensors():
    sub = load_subset(DATA, "FD001")
    norm = ConditionNormaliser.fit(sub.train)
    assert len(norm.stats) == 1  # FD001 has one operating condition
    # the 14 informative sensors the C-MAPSS literature uses for FD001 (s1, s5, s6, s10, s16, s18, s19 are flat)
    expected = ["s2", "s3", "s4", "s7", "s8", "s9", "s11", "s12", "s13", "s14", "s15", "s17", "s20", "s21"]
    assert norm.features == expected
    z = norm.transform(sub.train)
    assert np.allclose(z.mean(axis=0), 0.0, atol=1e-4) and np.allclose(z.std(axis=0), 1.0, atol=1e-3)


def _row(unit, cycle, settings, sensors):
    return " ".join(str(v) for v in [unit, cycle, *settings, *sensors])


def _write_synthetic(folder: Path, subset: str, *, gz: bool = False, columns: int = 26) -> None:
    """Two operating conditions with very different sensor levels; sensor s2 drifts up towards failure."""
    rng = np.random.default_rng(0)
    conditions = [(0.0, 0.0, 100.0, 500.0), (35.0, 0.84, 60.0, 900.0)]
    train, test = [], []
    for unit in (1, 2, 3):
        for cycle in range(1, 21):
            s1, s2_, s3, level = conditions[cycle % 2]
            sensors = [level + rng.normal(), level + cycle * 0.5 + rng.normal()] + [level] * 19
            train.append(_row(unit, cycle, [s1 + 1e-4, s2_, s3], sensors))
            if cycle <= 10:
                test.append(_row(unit, cycle, [s1, s2_ - 1e-4, s3], sensors))
    if columns != 26:
        train[3] = " ".join(train[3].split()[:columns])
    files = {f"train_{subset}": train, f"test_{subset}": test, f"RUL_{subset}": ["10", "11", "12"]}
    for stem, lines in files.items():
        text = "\n".join(lines) + "\n"
        if gz:
            with gzip.open(folder / f"{stem}.txt.gz", "wt") as fh:
                fh.write(text)
        else:
            (folder / f"{stem}.txt").write_text(text)


@pytest.mark.parametrize("gz", [False, True])
def test_synthetic_multi_condition_is_normalised_per_condition(tmp_path, gz):
    _write_synthetic(tmp_path, "FD902", gz=gz)
    sub = load_subset(tmp_path, "FD902")
    assert sub.train.height == 60 and list(sub.test_rul) == [10.0, 11.0, 12.0]
    assert sorted(operating_condition(sub.train).unique()) == ["0/0/100", "35/84/60"]
    norm = ConditionNormaliser.fit(sub.train)
    assert norm.features == ["s1", "s2"]  # s3..s21 are constant within each condition
    z = norm.transform(sub.train)
    cond = operating_condition(sub.train).to_numpy()
    for key in ("0/0/100", "35/84/60"):
        # the 400-unit level gap between conditions is gone: each condition is centred on its own mean
        assert abs(z[cond == key, 0].mean()) < 1e-5
    assert np.abs(z).max() < 5
    assert sub.test.filter(sub.test["unit"] == 2)["rul"][-1] == 11


def test_wrong_column_count_is_named(tmp_path):
    _write_synthetic(tmp_path, "FD903", columns=25)
    with pytest.raises(CmapssDataError, match=r"train_FD903.txt line 4: expected 26 columns, got 25"):
        load_subset(tmp_path, "FD903")


def test_missing_file_is_named(tmp_path):
    _write_synthetic(tmp_path, "FD904")
    (tmp_path / "RUL_FD904.txt").unlink()
    with pytest.raises(CmapssDataError, match=r"RUL_FD904: expected RUL_FD904.txt or RUL_FD904.txt.gz"):
        load_subset(tmp_path, "FD904")


def test_unknown_condition_at_scoring_time_is_named(tmp_path):
    _write_synthetic(tmp_path, "FD905")
    sub = load_subset(tmp_path, "FD905")
    norm = ConditionNormaliser.fit(sub.train.filter(operating_condition(sub.train) == "0/0/100"))
    with pytest.raises(CmapssDataError, match="operating conditions"):
        norm.transform(sub.test)
