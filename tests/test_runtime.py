"""CPU feature detection, the bf16 fallback on CPUs without bf16 units, and the OpenMP wait-policy
default that classiformer sets before torch starts its thread pool."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from classiformer import Classifier, fit, runtime
from classiformer.runtime import CpuFeatures, bf16_worthwhile, parse_cpuinfo

from .conftest import make_texts

# Abridged /proc/cpuinfo of the machines the figures come from (two processors each: only the first is read).
EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme sse sse2 avx f16c fma avx2 bmi2 sha_ni vaes
bogomips\t: 4890.81

processor\t: 1
model name\t: AMD EPYC
flags\t\t: fpu vme sse sse2 avx f16c fma avx2 bmi2 sha_ni vaes
"""
SAPPHIRE_RAPIDS = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse avx fma avx2 avx512f avx512_vnni avx_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
CASCADE_LAKE = """processor\t: 0
model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz
flags\t\t: fpu sse avx fma avx2 avx512f avx512_vnni
"""
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm sve i8mm bf16
CPU implementer\t: 0x41
"""


@pytest.mark.parametrize(
    "text, flags, native",
    [
        (EPYC_AVX2, ("avx2", "fma"), False),
        (CASCADE_LAKE, ("avx2", "fma", "avx512f", "avx512_vnni"), False),
        (SAPPHIRE_RAPIDS, ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16"), True),
        (GRAVITON3, ("asimd", "bf16", "i8mm", "sve"), True),
    ],
)
def test_parse_cpuinfo_reads_the_matrix_features(text: str, flags: tuple[str, ...], native: bool) -> None:
    f = parse_cpuinfo(text, cores=2, torch_capability="AVX2")
    assert f.flags == flags and f.native_bf16 is native and f.known
    assert f.summary().startswith(f"{f.model}, 2 cores, {', '.join(flags)}; torch kernels AVX2; ")
    assert ("no native bf16" in f.summary()) is not native
    assert f.to_dict()["native_bf16"] is native


def test_parse_cpuinfo_names_the_model_and_knows_when_it_knows_nothing() -> None:
    assert parse_cpuinfo(EPYC_AVX2, 2).model == "AMD EPYC"
    unknown = parse_cpuinfo("", 4)
    assert not unknown.known and unknown.flags == () and "flags unknown" in unknown.summary()


def test_cpu_features_of_this_machine_match_its_cpuinfo() -> None:
    f = runtime.cpu_features()
    assert f.torch_capability == torch.backends.cpu.get_cpu_capability()
    assert f.cores == runtime.available_cpus() >= 1
    if Path("/proc/cpuinfo").exists():
        assert f.known and ("avx2" in f.flags) == (" avx2" in Path("/proc/cpuinfo").read_text())


AVX2_ONLY = parse_cpuinfo(EPYC_AVX2, 2)
WITH_AMX = parse_cpuinfo(SAPPHIRE_RAPIDS, 2)


def test_bf16_falls_back_on_a_cpu_without_bf16_units(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="classiformer.runtime"):
        assert bf16_worthwhile("cpu", AVX2_ONLY, env={}) is False
    assert "no bf16 matrix units (AMD EPYC)" in caplog.text and "CLASSIFORMER_BF16=force" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="classiformer.runtime"):
        assert bf16_worthwhile("cpu", AVX2_ONLY, env={"CLASSIFORMER_BF16": "force"}) is True
    assert "forced" in caplog.text


def test_bf16_is_kept_where_it_is_native_unknown_or_on_a_gpu() -> None:
    assert bf16_worthwhile("cpu", WITH_AMX, env={}) is True
    assert bf16_worthwhile("cpu", CpuFeatures("?", 1, (), "DEFAULT", known=False), env={}) is True
    assert bf16_worthwhile("cuda", AVX2_ONLY, env={}) is True


@pytest.fixture
def tiny_run(tmp_path: Path) -> Path:
    from .test_training import tiny_config

    return fit(tiny_config(epochs=1), make_texts(60, seed=1), tmp_path / "run", progress=False).best_dir


@pytest.mark.parametrize("features, forced, dtype", [
    (AVX2_ONLY, False, torch.float32), (AVX2_ONLY, True, torch.bfloat16), (WITH_AMX, False, torch.bfloat16),
])
def test_classifier_and_training_apply_the_bf16_decision(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, features: CpuFeatures, forced: bool,
    dtype: torch.dtype,
) -> None:
    from .test_training import tiny_config

    monkeypatch.setattr(runtime, "cpu_features", lambda: features)
    if forced:
        monkeypatch.setenv("CLASSIFORMER_BF16", "force")
    else:
        monkeypatch.delenv("CLASSIFORMER_BF16", raising=False)
    clf = Classifier.load(tiny_run, device="cpu", bf16=True)
    assert next(clf.model.parameters()).dtype == dtype
    assert clf.predict(["goal match team"])[0] in clf.labels
    from classiformer.training import Trainer

    seen: list[torch.dtype | None] = []
    original = Trainer.__init__

    def spy(self: Trainer, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        seen.append(self.amp)

    monkeypatch.setattr(Trainer, "__init__", spy)
    fit(tiny_config(epochs=1, bf16=True), make_texts(30, seed=3), tmp_path / "bf16run", progress=False)
    assert seen == [None if dtype == torch.float32 else torch.bfloat16]


def _fresh_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    return env | extra


def _policy_after_import(env: dict[str, str]) -> str:
    # `import classiformer` loads PyTorch only on first use of a name that needs it (fit here); the
    # policy must be in the environment by then.
    code = ("import os, classiformer, sys; classiformer.fit; print(os.environ.get('OMP_WAIT_POLICY')); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    policy, torch_loaded = out.stdout.split()
    assert torch_loaded == "True"
    return policy


def test_import_sets_a_passive_wait_policy_unless_the_user_chose() -> None:
    assert _policy_after_import(_fresh_env()) == "PASSIVE"
    assert _policy_after_import(_fresh_env(OMP_WAIT_POLICY="ACTIVE")) == "ACTIVE"
    # A spin count the user set is a choice about waiting too: PASSIVE would override it.
    assert _policy_after_import(_fresh_env(GOMP_SPINCOUNT="10000")) == "None"


@pytest.mark.parametrize("cpus, load, threads", [(2, 0.0, 2), (2, 0.9, 2), (2, 1.5, 1), (2, 3.0, 1), (16, 2.2, 14), (1, 0.0, 1)])
def test_default_threads_leave_out_the_cpus_others_keep_busy(cpus: int, load: float, threads: int) -> None:
    assert runtime.default_threads(cpus, load) == threads


def test_set_threads_uses_the_default_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(runtime, "default_threads", lambda: 1)
        assert runtime.set_threads(0) == 1 == torch.get_num_threads()
        assert runtime.set_threads(2) == 2 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
