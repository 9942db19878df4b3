"""Which precision a run trains in. "auto" picks bfloat16 only where the hardware computes it natively.

The choice comes from what the hardware declares (CPU feature flags, a GPU's compute capability), never
from a timing: a benchmark on a shared machine can lie, and emulated bfloat16 is about twice as slow as
float32 (issue 15: 242 s against 128 s on a Xeon without avx512_bf16). Importing this module does not
import torch, so `zoo list` can use it to tell which measured results were taken on this kind of machine.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import torch

#: x86 flags (as /proc/cpuinfo spells them) that mean native bfloat16 matrix arithmetic.
X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: The Arm feature (FEAT_BF16: BFDOT, BFMMLA) in /proc/cpuinfo's Features line.
ARM_BF16_FEATURE = "bf16"
#: Linux's HWCAP2_BF16 bit on aarch64, for systems whose /proc/cpuinfo is missing or unreadable.
AT_HWCAP2, HWCAP2_BF16 = 26, 1 << 14
#: The first CUDA compute capability with bfloat16 tensor cores (Ampere).
CUDA_BF16_CAPABILITY = (8, 0)
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class CPU:
    """What a CPU declares about itself: its name, architecture family and feature flags."""

    name: str
    arch: str
    """"x86", "arm" or the machine string of anything else."""
    flags: frozenset[str]

    @property
    def bf16_features(self) -> list[str]:
        """The native bfloat16 features this CPU has (empty: bf16 would be emulated)."""
        if self.arch == "x86":
            return [flag for flag in X86_BF16_FLAGS if flag in self.flags]
        if self.arch == "arm":
            return [ARM_BF16_FEATURE] if ARM_BF16_FEATURE in self.flags else []
        return []

    def summary(self) -> str:
        return f"this CPU ({self.name})" if self.name else "this CPU"


@dataclass(frozen=True)
class GPU:
    """A CUDA device's name and compute capability."""

    name: str
    capability: tuple[int, int]


class Precision(NamedTuple):
    """The precision a run trains in ("fp32" or "bf16") and one sentence saying why."""

    name: str
    reason: str


def _family(machine: str) -> str:
    machine = machine.lower()
    if machine in ("x86_64", "amd64", "i386", "i686", "x86"):
        return "x86"
    if machine.startswith(("aarch64", "arm")):
        return "arm"
    return machine


def parse_cpuinfo(text: str, machine: str) -> CPU:
    """A CPU from the text of /proc/cpuinfo (x86: "model name", "flags"; Arm: "Features")."""
    name, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not name:
            name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return CPU(name=name, arch=_family(machine), flags=frozenset(flags))


def _hwcap2() -> int:
    """getauxval(AT_HWCAP2) on Linux, 0 where there is none."""
    import ctypes

    try:
        getauxval = ctypes.CDLL(None).getauxval
    except (OSError, AttributeError):
        return 0
    getauxval.restype = ctypes.c_ulong
    return int(getauxval(AT_HWCAP2))


def _macos_cpu(machine: str) -> CPU:
    """Apple silicon declares FEAT_BF16 (M2 and later) through sysctl."""

    def sysctl(key: str) -> str:
        try:
            return subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    flags = {ARM_BF16_FEATURE} if sysctl("hw.optional.arm.FEAT_BF16") == "1" else set()
    return CPU(name=sysctl("machdep.cpu.brand_string"), arch=_family(machine), flags=frozenset(flags))


def read_cpu(cpuinfo: Path = Path("/proc/cpuinfo"), machine: str | None = None) -> CPU:
    """This machine's CPU, from /proc/cpuinfo on Linux (plus HWCAP2 on Arm), sysctl on macOS."""
    machine = machine or platform.machine()
    try:
        cpu = parse_cpuinfo(cpuinfo.read_text(errors="replace"), machine)
    except OSError:
        if platform.system() == "Darwin":
            return _macos_cpu(machine)
        cpu = CPU(name=platform.processor(), arch=_family(machine), flags=frozenset())
    if cpu.arch == "arm" and not cpu.flags and platform.system() == "Linux" and _hwcap2() & HWCAP2_BF16:
        cpu = CPU(name=cpu.name, arch=cpu.arch, flags=frozenset({ARM_BF16_FEATURE}))
    return cpu


def read_gpu(device: torch.device) -> GPU:
    import torch

    return GPU(name=torch.cuda.get_device_name(device), capability=tuple(torch.cuda.get_device_capability(device)))


def native_bf16(device_type: str, cpu: CPU | None = None, gpu: GPU | None = None) -> tuple[bool, str]:
    """Whether `device_type` computes bfloat16 natively here, and the evidence in words."""
    if device_type == "cuda":
        assert gpu is not None
        major, minor = gpu.capability
        if gpu.capability >= CUDA_BF16_CAPABILITY:
            return True, f"this GPU ({gpu.name}, compute capability {major}.{minor}) has bfloat16 tensor cores"
        return False, (f"this GPU ({gpu.name}, compute capability {major}.{minor}) has no native bfloat16 "
                       f"(it needs {CUDA_BF16_CAPABILITY[0]}.{CUDA_BF16_CAPABILITY[1]} or later)")
    if device_type == "mps":
        return False, "zoo has not measured bfloat16 on Apple GPUs (mps), where older chips emulate it"
    if device_type != "cpu":
        return False, f"zoo knows no native bfloat16 test for {device_type} devices"
    assert cpu is not None
    found = cpu.bf16_features
    if found:
        return True, f"{cpu.summary()} has {' and '.join(found)}"
    if cpu.arch == "x86":
        wanted = "/".join(X86_BF16_FLAGS)
    elif cpu.arch == "arm":
        wanted = f"the Arm {ARM_BF16_FEATURE} feature"
    else:
        wanted = f"a known bfloat16 feature for {cpu.arch}"
    return False, f"{cpu.summary()} has no native bfloat16 (no {wanted})"


def resolve_precision(requested: str, device: torch.device, *, cpu: CPU | None = None, gpu: GPU | None = None) -> Precision:
    """"auto" becomes bf16 where `device` computes it natively and fp32 elsewhere; "fp32" and "bf16"
    are kept as asked. `cpu` and `gpu` default to this machine's (tests pass fakes)."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision {requested!r}: choose one of {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return Precision("fp32", "fp32: as asked (--precision or the recipe)")
    if device.type == "cpu" and cpu is None:
        cpu = read_cpu()
    if device.type == "cuda" and gpu is None:
        gpu = read_gpu(device)
    native, evidence = native_bf16(device.type, cpu, gpu)
    if requested == "bf16":
        if native:
            return Precision("bf16", f"bf16: as asked; {evidence}")
        return Precision("bf16", f"bf16: as asked, though {evidence}: emulated bfloat16 is likely slower than fp32")
    if native:
        return Precision("bf16", f"bf16: {evidence}")
    return Precision("fp32", f"fp32: {evidence}, and emulated bfloat16 would be slower")


# ---- The kind of machine a result was measured on (for `zoo list`; no torch import) ----


@dataclass(frozen=True)
class Machine:
    """What a measured result needs to be comparable: the processor that trained, its cores, native bf16."""

    name: str
    device: str
    """"cpu" or "cuda"."""
    cores: int | None
    bf16: bool | None
    """Native bfloat16 (CPUs; a GPU's name already says it)."""

    def same_kind(self, other: Machine) -> bool:
        """Same processor model, and for CPUs the same native bfloat16 (one name can cover both kinds)."""
        return (self.device, self.name, self.bf16) == (other.device, other.name, other.bf16) and bool(self.name)


def local_gpu_names(root: Path = Path("/proc/driver/nvidia/gpus")) -> list[str]:
    """NVIDIA GPU names from the driver's /proc files, without importing torch (Linux only)."""
    names = []
    try:
        folders = sorted(root.iterdir())
    except OSError:
        return []
    for folder in folders:
        try:
            text = (folder / "information").read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model":
                names.append(value.strip())
    return names


def local_machines(cpu: CPU | None = None, gpu_names: list[str] | None = None) -> list[Machine]:
    """This machine as results describe it: its CPU, and each of its NVIDIA GPUs."""
    cpu = cpu or read_cpu()
    machines = [Machine(cpu.name, "cpu", os.cpu_count(), bool(cpu.bf16_features))]
    for name in local_gpu_names() if gpu_names is None else gpu_names:
        machines.append(Machine(name, "cuda", None, None))
    return machines
