"""One ONNX Runtime session setup for every served model: CPU provider, one thread per operator and between
operators (scoring runs beside the ETL and the stream processor on small machines; batches are small)."""

from __future__ import annotations

from pathlib import Path


def cpu_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
