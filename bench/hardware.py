"""What every benchmark prints and stores about the machine it ran on: the CPU's matrix features
(classiformer.runtime.cpu_features), the threads, the load at the start and the library versions.
Figures from a CPU without bf16 units, or from a busy machine, are not comparable with others, so
each script prints :func:`header` first and stores :func:`machine` in its JSON."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import torch

from classiformer.runtime import cpu_features


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu_features().to_dict(),
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1min": round(load[0], 2) if load else None,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def header(info: dict[str, Any] | None = None) -> str:
    info = info or machine()
    gpu = f", GPU {info['cuda']}" if info["cuda"] else ""
    return (f"machine: {info['cpu']['summary']}{gpu}; {info['torch_threads']} torch threads; "
            f"load {info['load_average_1min']}; torch {info['torch']}; {info['date']}")
