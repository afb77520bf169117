"""A one-line description of the devices a result was computed on (for reports)."""

from __future__ import annotations

import os
import platform

import jax


def cpu_model() -> str:
    """Processor model name from /proc/cpuinfo (Linux), else ``platform.processor()``.

    Examples:
        >>> name = cpu_model()  # e.g. 'AMD EPYC 7B13'
        >>> isinstance(name, str) and len(name) > 0
        True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_devices() -> str:
    """E.g. ``"1x NVIDIA H100 (gpu)"`` or ``"cpu: AMD EPYC, 2 cores, 1 XLA device(s)"``.

    Examples:
        >>> text = describe_devices()
        >>> if jax.default_backend() == "cpu":
        ...     print(text.startswith(f"cpu: {cpu_model()}, ") and "XLA device(s)" in text)
        ... else:
        ...     print(text.endswith(f"({jax.default_backend()})"))
        True
    """
    devices = jax.local_devices()
    backend = jax.default_backend()
    if backend == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return f"cpu: {cpu_model()}, {cores} cores, {len(devices)} XLA device(s)"
    kinds = ", ".join(sorted({d.device_kind for d in devices}))
    return f"{len(devices)}x {kinds} ({backend})"
