"""The precision choice, on CPUs and GPUs faked through their declared features."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from zoo import precision
from zoo.precision import CPU, GPU, Machine, local_gpu_names, local_machines, parse_cpuinfo, read_cpu, resolve_precision

CPU_DEVICE, CUDA_DEVICE, MPS_DEVICE = torch.device("cpu"), torch.device("cuda", 0), torch.device("mps")

# Trimmed from real /proc/cpuinfo files: the lines that matter, as the kernel writes them.
XEON_NO_BF16 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni
"""
SAPPHIRE_RAPIDS = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu sse avx2 avx512f avx512bw avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8
"""
EPYC_ZEN4 = """processor\t: 0
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse avx2 avx512f avx512bw avx512_bf16 avx512_vnni
"""
EPYC_ZEN3 = """processor\t: 0
model name\t: AMD EPYC 7R13 Processor
flags\t\t: fpu sse avx avx2 fma sha_ni vaes
"""
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm sve i8mm bf16 dgh rng
CPU implementer\t: 0x41
"""
GRAVITON2 = """processor\t: 0
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
CPU implementer\t: 0x41
"""


def cpu(text: str, machine: str = "x86_64") -> CPU:
    return parse_cpuinfo(text, machine)


@pytest.mark.parametrize("text, features", [(SAPPHIRE_RAPIDS, ["avx512_bf16", "amx_bf16"]), (EPYC_ZEN4, ["avx512_bf16"])])
def test_auto_is_bf16_on_an_x86_cpu_with_native_bf16(text: str, features: list[str]) -> None:
    name, reason = resolve_precision("auto", CPU_DEVICE, cpu=cpu(text))
    assert name == "bf16"
    assert reason.startswith("bf16:") and " and ".join(features) in reason
    assert cpu(text).name in reason


@pytest.mark.parametrize("text", [XEON_NO_BF16, EPYC_ZEN3])
def test_auto_is_fp32_on_an_x86_cpu_that_would_emulate_bf16(text: str) -> None:
    """AVX-512 alone (the Xeon of issue 15) is not enough: its bf16 is emulated and slower."""
    name, reason = resolve_precision("auto", CPU_DEVICE, cpu=cpu(text))
    assert name == "fp32"
    assert "no native bfloat16" in reason and "avx512_bf16/amx_bf16" in reason
    assert cpu(text).name in reason


def test_auto_follows_the_arm_bf16_feature() -> None:
    assert resolve_precision("auto", CPU_DEVICE, cpu=cpu(GRAVITON3, "aarch64")).name == "bf16"
    name, reason = resolve_precision("auto", CPU_DEVICE, cpu=cpu(GRAVITON2, "aarch64"))
    assert name == "fp32" and "Arm bf16 feature" in reason


def test_an_unknown_architecture_gets_fp32() -> None:
    name, reason = resolve_precision("auto", CPU_DEVICE, cpu=CPU("", "riscv64", frozenset({"bf16"})))
    assert name == "fp32" and "riscv64" in reason


@pytest.mark.parametrize("capability, expected", [((8, 0), "bf16"), ((9, 0), "bf16"), ((7, 5), "fp32"), ((7, 0), "fp32")])
def test_auto_on_cuda_needs_compute_capability_8(capability: tuple[int, int], expected: str) -> None:
    name, reason = resolve_precision("auto", CUDA_DEVICE, gpu=GPU("NVIDIA Fake", capability))
    assert name == expected
    assert f"NVIDIA Fake, compute capability {capability[0]}.{capability[1]}" in reason


def test_auto_on_mps_is_fp32_and_says_why() -> None:
    name, reason = resolve_precision("auto", MPS_DEVICE)
    assert name == "fp32" and "mps" in reason


def test_explicit_choices_are_kept_and_emulation_is_named() -> None:
    slow = cpu(XEON_NO_BF16)
    assert resolve_precision("fp32", CPU_DEVICE, cpu=cpu(SAPPHIRE_RAPIDS)).name == "fp32"
    name, reason = resolve_precision("bf16", CPU_DEVICE, cpu=slow)
    assert name == "bf16" and "emulated" in reason
    name, reason = resolve_precision("bf16", CUDA_DEVICE, gpu=GPU("NVIDIA A100", (8, 0)))
    assert name == "bf16" and "emulated" not in reason


def test_fp32_reads_no_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    """The quickstart recipe (fp32) must not depend on what /proc says."""

    def fail(*args: object, **kwargs: object) -> CPU:
        raise AssertionError("read_cpu was called")

    monkeypatch.setattr(precision, "read_cpu", fail)
    assert resolve_precision("fp32", CPU_DEVICE) == ("fp32", "fp32: as asked (--precision or the recipe)")


def test_an_unknown_request_names_the_choices() -> None:
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        resolve_precision("fp16", CPU_DEVICE)


def test_read_cpu_reads_the_file_and_survives_its_absence(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(SAPPHIRE_RAPIDS * 2)
    found = read_cpu(info, machine="x86_64")
    assert found.name == "Intel(R) Xeon(R) Platinum 8488C" and found.bf16_features == ["avx512_bf16", "amx_bf16"]
    missing = read_cpu(tmp_path / "absent", machine="x86_64")
    assert missing.arch == "x86" and missing.bf16_features == []


def test_this_machine_is_read_without_error() -> None:
    """Whatever this machine is, auto resolves and the reason names the CPU it read."""
    name, reason = resolve_precision("auto", CPU_DEVICE)
    assert name in ("fp32", "bf16") and reason.startswith(name + ":")
    assert (name == "bf16") == bool(read_cpu().bf16_features)


def test_gpu_names_come_from_the_driver_files(tmp_path: Path) -> None:
    (tmp_path / "0000:01:00.0").mkdir()
    (tmp_path / "0000:01:00.0" / "information").write_text("Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   42\n")
    assert local_gpu_names(tmp_path) == ["NVIDIA H100 80GB HBM3"]
    assert local_gpu_names(tmp_path / "none") == []


def test_machines_of_one_name_differ_by_native_bf16() -> None:
    """Issue 15's 'AMD EPYC' was two kinds of machine: with and without avx512_bf16."""
    zen4 = local_machines(cpu(EPYC_ZEN4.replace("AMD EPYC 9R14 96-Core Processor", "AMD EPYC")), gpu_names=[])[0]
    zen3 = local_machines(cpu(EPYC_ZEN3.replace("AMD EPYC 7R13 Processor", "AMD EPYC")), gpu_names=[])[0]
    assert zen4.bf16 and not zen3.bf16
    assert not zen4.same_kind(zen3) and zen3.same_kind(Machine("AMD EPYC", "cpu", 64, False))
    gpus = local_machines(cpu(EPYC_ZEN3), gpu_names=["NVIDIA H100 80GB HBM3"])
    assert [m.device for m in gpus] == ["cpu", "cuda"]
