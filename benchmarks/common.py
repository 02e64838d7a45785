"""Shared helpers for benchmarks: where results go, which model to use, machine facts."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from instrument.paths import DEFAULT_MODEL, ROOT

RESULTS = ROOT / "benchmarks" / "results"


CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "fma")


def cpu() -> dict[str, Any]:
    """CPU model and the flags that matter to onnxruntime/oneDNN kernels (lscpu; on macOS
    sysctl). Decode speed differs 3-4x between CPUs: every result file carries this."""
    import subprocess

    info: dict[str, Any] = {"cores": os.cpu_count(), "machine": platform.machine()}
    cmd = ["sysctl", "-n", "machdep.cpu.brand_string"] if sys.platform == "darwin" else ["lscpu"]
    try:
        text = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    if sys.platform == "darwin":
        info["model_name"] = text.strip()
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("Model name", "Vendor ID", "Hypervisor vendor", "L2 cache", "L3 cache"):
            info[key.lower().replace(" ", "_")] = value
        if key == "Flags":
            have = set(value.split())
            info["flags"] = [f for f in CPU_FLAGS if f in have]
    return info


def machine() -> dict[str, Any]:
    import numpy
    import torch

    return {
        "cpu": cpu(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "loadavg_1m": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def bench_model(tmp: Path) -> Path:
    """The default model if it is there, otherwise a tiny model made by models.testing."""
    if DEFAULT_MODEL.is_file():
        return DEFAULT_MODEL
    from models.testing import make_tiny_model

    return make_tiny_model(tmp / "tiny.ts", channels=1, latent_size=8, ratio=256)


def with_twin(model: Path, tmp: Path) -> Path:
    """``model`` if its ONNX twin lies beside it, else a copy in ``tmp`` with a twin written
    (so both backends can be measured on the same model in one run)."""
    import shutil

    from models.onnx_export import write_twin

    if model.with_suffix(".onnx").is_file():
        return model
    copy = tmp / model.name
    shutil.copy(model, copy)
    for suffix in (".toml", ".json"):
        if model.with_suffix(suffix).is_file():
            shutil.copy(model.with_suffix(suffix), copy.with_suffix(suffix))
    write_twin(copy)
    return copy


def emit(name: str, result: dict[str, Any]) -> None:
    """JSON to stdout and to benchmarks/results/NAME.json."""
    result = {"benchmark": name, "machine": machine(), **result}
    text = json.dumps(result, indent=2, default=float)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(text + "\n")
    print(text, flush=True)
