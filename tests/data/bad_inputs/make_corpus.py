"""Regenerate the binary members of the bad-input corpus (the text files are written by hand).

    python tests/data/bad_inputs/make_corpus.py

Deterministic: the same bytes every run (no timestamps inside the gzip header, fixed Parquet writer).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent / "raw"


def main() -> None:
    # Parquet with a string timestamp, an int sensor, a string sensor, an extra column, missing sensors.
    table = pa.table(
        {
            "compressor_id": pa.array(["COMP-0005", "COMP-0005", "COMP-0005", None], pa.string()),
            "timestamp": pa.array(["2026-11-16T00:00:00Z", "2026-11-16T00:10:00+01:00", "bad", None], pa.string()),
            "vibration_mms": pa.array([3, 4, 5, None], pa.int64()),
            "discharge_temp_f": pa.array([220.0, float("nan"), 221.0, None], pa.float64()),
            "suction_pressure_psi": pa.array(["80.5", "n/a", None, None], pa.string()),
            "extra_col": pa.array(["x", "y", "z", None], pa.string()),
        }
    )
    folder = HERE / "date=2026-11-16"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "part-1.parquet", compression="snappy", write_statistics=False)

    folder = HERE / "date=2026-11-17"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0.parquet").write_bytes(b"this is not a parquet file\n")
    text = (
        "compressor_id,timestamp,vibration_mms,discharge_temp_f,suction_pressure_psi,"
        "discharge_pressure_psi,horsepower,gas_flow_mcfd\n"
        "COMP-0006,2026-11-17T00:00:00Z,3.0,220.0,80.0,1000.0,1200.0,9000.0\n"
        "COMP-0006,2026-11-17T00:10:00Z,3.1,220.5,80.1,1000.5,1201.0,9001.0\n"
    )
    (folder / "part-1.csv.gz").write_bytes(gzip.compress(text.encode(), mtime=0))

    # JSONL with CRLF line endings and a line that is not UTF-8.
    folder = HERE / "2026" / "11" / "17" / "ST-01"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "COMP-0001.jsonl").write_bytes(
        b'{"compressor_id": "COMP-0001", "timestamp": "2026-11-17T00:00:00Z", "vibration_mms": 3.0}\r\n'
        b'{"compressor_id": "COMP-\xff\xfe", "timestamp": "2026-11-17T00:10:00Z", "vibration_mms": 3.1}\r\n'
    )


if __name__ == "__main__":
    main()
