"""Each check catches the broken environment it exists for, with the likely cause."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import time
from dataclasses import replace

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from torchsmoke import envinfo
from torchsmoke.checks import board, deploy, distributed, extras, numerics, training
from torchsmoke.checks.compiler import missing_compiler, nameless_user, torch_compile
from torchsmoke.checks.environment import expect, mismatch, variant_hint, version_matches
from torchsmoke.checks.gpu import _driver_cause, cuda
from torchsmoke.checks.loader import dataloader, slow_workers_note, small_shm_note
from torchsmoke.core import CheckFailed, Context, Options, run_check

NO_GPU = not torch.cuda.is_available()
MiB = 2**20


@pytest.fixture(scope="module")
def real_env() -> envinfo.EnvReport:
    return envinfo.collect()


def context(env: envinfo.EnvReport, **options) -> Context:
    """A context whose environment report is the given (possibly doctored) one."""
    ctx = Context(Options(**options))
    ctx.env = env  # replaces the cached property's value
    return ctx


def with_torch(env: envinfo.EnvReport, **changes) -> envinfo.EnvReport:
    return replace(env, torch=replace(env.torch, **changes))


# --- expect ------------------------------------------------------------------------------------


def test_expecting_cu118_on_a_cpu_torch_fails_with_the_wheel_index_hint(real_env):
    env = with_torch(real_env, version="2.13.0+cpu", variant="cpu", cuda=None)
    result = run_check(expect, context(env, expect={"variant": "cu118"}))
    assert result.status == "fail"
    assert result.reason.startswith(
        "torch is the CPU build but cu118 was expected: was the CUDA wheel index used?"
    )
    assert result.details["mismatches"] == [result.reason]


def test_expect_passes_when_everything_matches_ignoring_the_local_label(real_env):
    env = with_torch(real_env, version="2.7.1+cu118", variant="cu118", cuda="11.8")
    env = replace(
        env,
        torchvision=envinfo.PackageInfo("0.22.1+cu118", None, "cu118"),
        torchaudio=envinfo.PackageInfo("2.7.1", "2.7.1+cu118", "cu118"),
    )
    wanted = {
        "variant": "cu118",
        "torch": "2.7.1",
        "torchvision": "0.22.1",
        "torchaudio": "2.7.1",
        "python": env.python.version.rsplit(".", 1)[0],
    }
    result = run_check(expect, context(env, expect=wanted))
    assert (result.status, result.reason) == ("pass", None)


def test_expect_skips_when_nothing_was_expected(real_env):
    result = run_check(expect, context(real_env))
    assert result.status == "skip" and "nothing expected" in result.reason


def test_expect_lists_every_mismatch(real_env):
    env = replace(
        with_torch(real_env, version="2.11.0+cu128", variant="cu128", cuda="12.8"),
        torchvision=None,
        torchaudio=envinfo.PackageInfo("2.10.0", None, None),
    )
    wanted = {"variant": "cu130", "torchvision": "0.26.0", "torchaudio": "2.11.0"}
    result = run_check(expect, context(env, expect=wanted))
    assert result.status == "fail"
    problems = result.details["mismatches"]
    assert len(problems) == 3
    assert "cu128 build but cu130 was expected" in problems[0] and "cu130 index" in problems[0]
    assert "torchvision is not installed" in problems[1]
    assert "torchvision must match torch 2.11.0" in problems[1]
    assert "torchaudio 2.10.0 is installed but 2.11.0" in problems[2]
    assert "CUDA minor version" in problems[2]


@pytest.mark.parametrize(
    ("actual", "expected", "words"),
    [
        ("cpu", "cu126", "was the CUDA wheel index used?"),
        ("cu130", "cpu", "pip's default index serves CUDA builds"),
        ("cu130", "cu128", "install from the cu128 index"),
        ("rocm6.2", "cu126", "torch is the rocm6.2 build but cu126 was expected"),
    ],
)
def test_variant_hints(actual, expected, words):
    assert words in variant_hint(actual, expected)


def test_version_matching_ignores_labels_and_matches_python_by_prefix():
    assert version_matches("2.7.1+cu118", "2.7.1")
    assert version_matches("3.11.2", "3.11")
    assert not version_matches("3.1.2", "3.11")
    assert not version_matches("2.7.0", "2.7.1")
    assert mismatch("python", "3.12.1", "3.11", "2.7.1").startswith("Python 3.12.1 but 3.11")
    assert mismatch("torch", "2.7.1+cu118", "2.7.1", "2.7.1") is None


def test_require_gpu_is_an_expectation_too(real_env):
    ctx = context(real_env, require_gpu=True)
    ctx.has_cuda = False
    result = run_check(expect, ctx)
    assert result.status == "fail" and "--require-gpu" in result.reason


# --- cuda --------------------------------------------------------------------------------------


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
def test_no_gpu_skips_with_the_reason(real_env):
    result = run_check(cuda, context(real_env))
    assert result.status == "skip" and result.reason.startswith("no GPU")


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
def test_require_gpu_without_a_gpu_fails_with_the_causes(real_env):
    env = with_torch(real_env, version="2.13.0+cpu", variant="cpu", cuda=None, hip=None)
    result = run_check(cuda, context(env, require_gpu=True))
    assert result.status == "fail"
    assert "--require-gpu" in result.reason
    for cause in (
        "torch is the CPU build",
        "without --gpus all",
        "driver is too old",
        "NVIDIA container toolkit is missing",
    ):
        assert cause in result.reason


def test_the_driver_hint_names_the_minimum_and_drops_out_when_met():
    assert "needs >= 580.65.06, found 570.86.15" in _driver_cause("13.0", "570.86.15")
    assert _driver_cause("13.0", "580.95.05") is None
    assert "needs >= 520.61.05)" in _driver_cause("11.8", None)
    assert _driver_cause(None, None) == "the host NVIDIA driver is too old for this CUDA build"


# --- dataloader --------------------------------------------------------------------------------


class WorkerDies:
    """A dataset whose workers die of SIGBUS, as they do when /dev/shm is full."""

    def __len__(self) -> int:
        return 32

    def __getitem__(self, index: int):
        os.kill(os.getpid(), signal.SIGBUS)
        time.sleep(5)


class ShmFull:
    def __len__(self) -> int:
        return 32

    def __getitem__(self, index: int):
        raise OSError(28, "No space left on device: '/dev/shm/torch_4242_1234'")


class PlainBug:
    def __len__(self) -> int:
        return 32

    def __getitem__(self, index: int):
        raise ValueError("a bug in __getitem__")


def _dataloader_with(ctx: Context, dataset):
    return run_check(replace(dataloader, func=lambda c: dataloader.func(c, dataset=dataset)), ctx)


@pytest.mark.parametrize("dataset", [WorkerDies(), ShmFull()], ids=["bus error", "shm full"])
def test_a_dataloader_failure_is_caught_with_the_shm_fix(real_env, dataset):
    env = replace(real_env, shm_bytes=64 * MiB)
    result = _dataloader_with(context(env, device="cpu"), dataset)
    assert result.status == "fail"
    assert result.reason.startswith("DataLoader with 2 workers failed:")
    assert "/dev/shm is 64.0 MiB" in result.reason
    assert "--shm-size=2g or --ipc=host" in result.reason


def test_an_unrelated_dataloader_failure_gets_no_shm_hint(real_env):
    result = _dataloader_with(context(real_env, device="cpu"), PlainBug())
    assert result.status == "fail"
    assert "a bug in __getitem__" in result.reason and "shm" not in result.reason


def test_a_small_shm_is_reported_on_pass(real_env):
    env = replace(real_env, shm_bytes=64 * MiB)
    result = run_check(dataloader, context(env, device="cpu", quick=True))
    assert result.status == "pass", result.reason
    assert result.reason.startswith(small_shm_note(64 * MiB))
    assert result.reason.startswith("passed; /dev/shm is 64.0 MiB (< 1 GiB)")
    assert result.details["workers_used"] == [0, 1]
    assert small_shm_note(2 * 2**30) is None


# --- training thresholds -----------------------------------------------------------------------


def test_training_that_does_not_learn_fails(real_env, monkeypatch):
    monkeypatch.setattr(training, "fit", lambda model, data, **kw: [2.3] * kw["steps"])
    result = run_check(training.mlp, context(real_env, device="cpu", quick=True))
    assert result.status == "fail"
    assert "held-out accuracy" in result.reason and "training does not learn" in result.reason


# --- vision / audio ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chk", "name"), [(extras.vision, "torchvision"), (extras.audio, "torchaudio")]
)
def test_a_missing_package_skips(real_env, monkeypatch, chk, name):
    monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail as if not installed
    result = run_check(chk, context(real_env, device="cpu"))
    assert (result.status, result.reason) == ("skip", f"{name} is not installed")


@pytest.mark.parametrize(
    ("chk", "error", "cause"),
    [
        (
            extras.vision,
            "operator torchvision::nms does not exist",
            "was built for another torch than",
        ),
        (
            extras.audio,
            "Detected that PyTorch and TorchAudio were compiled with different CUDA versions. "
            "PyTorch has CUDA version 13.2 whereas TorchAudio has CUDA version 13.0.",
            "CUDA major.minor must match",
        ),
    ],
    ids=["torchvision for another torch", "torchaudio for another CUDA"],
)
def test_a_broken_package_fails_with_the_likely_cause(real_env, monkeypatch, chk, error, cause):
    def broken_import(name: str):
        raise RuntimeError(error)

    monkeypatch.setattr(extras.importlib, "import_module", broken_import)
    result = run_check(chk, context(real_env, device="cpu"))
    assert result.status == "fail"
    assert error.split(".")[0] in result.reason
    assert "likely cause:" in result.reason
    assert cause in result.reason


# --- compile -----------------------------------------------------------------------------------


def test_compile_without_a_compiler_fails_with_the_fix(real_env):
    env = replace(real_env, compilers={"cc": None, "cxx": None})
    result = run_check(torch_compile, context(env, device="cpu"))
    assert result.status == "fail"
    assert result.reason == (
        "no C compiler (cc/gcc) on PATH: torch.compile needs one; install one (Debian/Ubuntu: "
        "apt-get install g++ libc6-dev; every torchenv image has it: rebuild with `invoke build`)"
    )
    assert result.details["compilers"] == {"cc": None, "cxx": None}


def test_compile_needs_cxx_on_cpu_and_cc_on_cuda():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert "no C++ compiler" in missing_compiler({"cc": "/usr/bin/cc", "cxx": None}, cpu)
    assert missing_compiler({"cc": "/usr/bin/cc", "cxx": None}, gpu) is None
    assert "triton" in missing_compiler({"cc": None, "cxx": "/usr/bin/g++"}, gpu)
    assert missing_compiler({"cc": "/usr/bin/cc", "cxx": "/usr/bin/g++"}, cpu) is None


def test_compile_is_skipped_in_quick_mode(real_env):
    result = run_check(torch_compile, context(real_env, quick=True))
    assert (result.status, result.reason) == ("skip", "skipped in --quick mode")


# --- ddp ---------------------------------------------------------------------------------------


def _sleeper(rank: int) -> None:
    time.sleep(60)


def test_ddp_processes_that_hang_are_killed_at_the_deadline():
    processes = mp.start_processes(_sleeper, nprocs=2, join=False, start_method="fork")
    start = time.monotonic()
    with pytest.raises(CheckFailed, match="did not finish within 1 s"):
        distributed._join(processes, timeout_s=1.0)
    assert time.monotonic() - start < 10
    assert not any(p.is_alive() for p in processes.processes)


def test_a_failing_ddp_rank_fails_the_check_with_its_error(real_env, monkeypatch):
    def broken_step(rank: int, backend: str, seed: int) -> dict:
        raise RuntimeError(f"rank {rank} lost its peer")

    monkeypatch.setattr(distributed, "_step", broken_step)  # forked ranks inherit the patch
    result = run_check(distributed.ddp, context(real_env, device="cpu"))
    assert result.status == "fail"
    assert result.reason.startswith("a DDP process failed:")
    assert "RuntimeError: rank" in result.reason and "lost its peer" in result.reason


# --- dataloader throughput ---------------------------------------------------------------------


def test_the_dataloader_reports_samples_per_second_with_0_and_2_workers(real_env):
    env = replace(real_env, shm_bytes=2 * 2**30)
    result = run_check(dataloader, context(env, device="cpu", quick=True))
    assert result.status == "pass", result.reason
    rates = result.details["samples_per_s"]
    assert set(rates) == {"0", "2"} and all(rate > 0 for rate in rates.values())
    # The note is there exactly when the workers were slower.
    assert (result.reason is not None) == (rates["2"] < rates["0"])


def test_slower_workers_are_explained_with_what_to_do():
    note = slow_workers_note({0: 20000.0, 2: 800.0}, cpu_count=2)
    assert note.startswith("2 workers were slower than none (800 vs 20000 samples/s)")
    for advice in ("persistent_workers=True", "(2 here)", "pin_memory=True only", "--shm-size=2g"):
        assert advice in note
    assert slow_workers_note({0: 800.0, 2: 2000.0}, cpu_count=2) is None


# --- checkpoint --------------------------------------------------------------------------------


def test_the_checkpoint_loads_on_the_cpu_with_map_location(real_env):
    result = run_check(numerics.checkpoint, context(real_env))
    assert result.status == "pass", result.reason
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert result.details["saved_on"] == device
    assert result.details["loaded_on"] == [device, "cpu"]
    assert result.details["cpu_max_error"] <= 1e-4


def test_a_checkpoint_that_loads_differently_on_the_cpu_fails(real_env, monkeypatch):
    loads = []
    real_load = torch.load

    def load(path, map_location=None, **kw):
        state = real_load(path, map_location=map_location, **kw)
        loads.append(map_location)
        if len(loads) == 2:  # the CPU load: a weight changed on the way
            state["0.weight"] = state["0.weight"] + 0.5
        return state

    monkeypatch.setattr(numerics.torch, "load", load)
    result = run_check(numerics.checkpoint, context(real_env, device="cpu"))
    assert loads[1] == torch.device("cpu")
    assert result.status == "fail"
    assert result.reason.startswith("saved on cpu, loaded on the CPU with map_location")


# --- quantize ----------------------------------------------------------------------------------


@pytest.fixture
def without_torchao(monkeypatch):
    """The path of an environment without torchao: torch.ao's quantize_dynamic."""
    monkeypatch.setattr(deploy, "torchao_quantization", lambda: (None, "torchao is not installed"))


def test_quantize_uses_torchao_where_it_is_installed(real_env):
    ao, why_not = deploy.torchao_quantization()
    if ao is None:  # the dev extras install it (pyproject.toml)
        pytest.skip(f"torchao's path needs torchao: {why_not}")
    result = run_check(deploy.quantize, context(real_env, quick=True))
    assert result.status == "pass", result.reason
    d = result.details
    assert d["api"] == deploy.TORCHAO_API and d["engine"] is None
    assert d["accuracy_fp32"] - d["accuracy_int8"] <= 0.02 and d["accuracy_fp32"] > 0.8
    assert d["bytes_int8"] < d["bytes_fp32"] / 2  # int8 weights: about a quarter
    assert "torch.nn.modules.linear.Linear" in d["modules"]  # kept, with an int8 weight
    assert d["weights"] and "torch.nn.parameter.Parameter" not in d["weights"]
    assert "deprecation" not in d and result.reason is None


def test_a_torchao_that_does_not_import_falls_back_and_says_why(monkeypatch):
    monkeypatch.setattr(deploy.importlib.util, "find_spec", lambda name: object())

    def broken(name):
        raise ImportError("undefined symbol: _ZN3c10\nmore")

    monkeypatch.setattr(deploy.importlib, "import_module", broken)
    assert deploy.torchao_quantization() == (
        None,
        "torchao is installed but does not import (ImportError: undefined symbol: _ZN3c10)",
    )


def test_unquantized_linears_are_named():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    assert deploy.unquantized_linears(model) == ["0", "2"]
    assert deploy.unquantized_linears(nn.Linear(2, 2)) == ["model"]


def test_quantize_keeps_accuracy_shrinks_the_model_and_reports_the_engine(
    real_env, without_torchao
):
    result = run_check(deploy.quantize, context(real_env, quick=True))
    assert result.status == "pass", result.reason
    d = result.details
    assert d["engine"] in torch.backends.quantized.supported_engines and d["engine"] != "none"
    assert d["accuracy_fp32"] - d["accuracy_int8"] <= 0.02 and d["accuracy_fp32"] > 0.8
    assert d["bytes_int8"] < d["bytes_fp32"] / 2  # int8 weights: about a quarter
    assert "torch.ao.nn.quantized.dynamic.modules.linear.Linear" in d["modules"]
    if "deprecation" in d:  # torch says so itself: the result repeats it, with the way out
        assert d["deprecation"] in result.reason
        assert "torchao is not installed; pip install torchao" in result.reason


def test_quantize_skips_without_a_quantized_engine(real_env, monkeypatch, without_torchao):
    monkeypatch.setattr(deploy, "supported_engines", lambda: ["none"])
    result = run_check(deploy.quantize, context(real_env, quick=True))
    assert result.status == "skip"
    assert result.reason == (
        "this torch build has no quantized engine (supported engines: ['none']): "
        "int8 quantization cannot run here"
    )


@pytest.mark.parametrize(
    ("supported", "current", "chosen"),
    [
        (["qnnpack", "x86", "fbgemm"], "x86", "x86"),
        (["qnnpack", "fbgemm"], "none", "fbgemm"),
        (["none", "qnnpack"], "none", "qnnpack"),
        (["none"], "none", None),
    ],
    ids=["torch's choice", "preferred when none chosen", "the only one", "no engine"],
)
def test_engine_choice(supported, current, chosen):
    assert deploy.pick_engine(supported, current) == chosen


def test_quantization_that_loses_accuracy_fails(real_env, monkeypatch, without_torchao):
    real = torch.ao.quantization.quantize_dynamic

    def lossy(model, *args, **kw):
        with torch.no_grad():
            model[0].weight.mul_(-1)  # a broken quantizer: accuracy collapses
        return real(model, *args, **kw)

    monkeypatch.setattr(torch.ao.quantization, "quantize_dynamic", lossy)
    result = run_check(deploy.quantize, context(real_env, device="cpu", quick=True))
    assert result.status == "fail"
    assert "more than 2% below fp32's" in result.reason


def test_quantization_that_quantizes_nothing_fails(real_env, monkeypatch, without_torchao):
    monkeypatch.setattr(torch.ao.quantization, "quantize_dynamic", lambda model, *a, **k: model)
    result = run_check(deploy.quantize, context(real_env, device="cpu", quick=True))
    assert result.status == "fail" and "left nn.Linear layers unquantized" in result.reason


# --- export ------------------------------------------------------------------------------------


def test_exported_programs_equal_eager_after_save_and_load(real_env):
    result = run_check(deploy.export, context(real_env, quick=True))
    assert result.status == "pass", result.reason
    for name in ("mlp", "cnn"):
        d = result.details[name]
        assert d["max_error"] <= 1e-4 and d["file_bytes"] > 0 and d["batch_sizes"] == [64, 7]


def test_an_exported_program_that_differs_from_eager_fails(real_env, monkeypatch):
    real_load = torch.export.load

    class Drifted:
        def __init__(self, program):
            self.program = program

        def module(self):
            inner = self.program.module()
            return lambda x: inner(x) + 1e-2

    monkeypatch.setattr(torch.export, "load", lambda path: Drifted(real_load(path)))
    result = run_check(deploy.export, context(real_env, device="cpu", quick=True))
    assert result.status == "fail"
    assert result.reason.startswith("exported mlp differs from eager on a batch of 64")


# --- tensorboard -------------------------------------------------------------------------------

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
needs_tensorboard = pytest.mark.skipif(
    not HAS_TENSORBOARD, reason="tensorboard is not installed here (pip install tensorboard)"
)


@needs_tensorboard
def test_tensorboard_logs_reads_back_and_serves(real_env):
    result = run_check(board.tensorboard, context(real_env))
    assert result.status == "pass", result.reason
    d = result.details
    assert d["steps"] == 150 and d["histograms"] == 8  # every 20th step: 0, 20, ..., 140
    assert {"train/loss", "eval/accuracy"} <= set(d["tags"]["scalars"])
    served = d["served"]
    assert served["runs"] == ["."] and served["stopped"] and served["ready_s"] < 60
    assert served["command"][0].endswith("tensorboard") and "--logdir" in served["command"]


@needs_tensorboard
def test_tensorboard_in_quick_mode_logs_and_reads_back_without_serving(real_env):
    result = run_check(board.tensorboard, context(real_env, quick=True))
    assert result.status == "pass", result.reason
    assert result.details["steps"] == 60 and result.details["histograms"] == 3  # 0, 20, 40
    assert result.details["served"] == "not tried in --quick mode"


def test_tensorboard_skips_where_it_is_not_installed(real_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` fails
    result = run_check(board.tensorboard, context(real_env, quick=True))
    assert result.status == "skip"
    assert result.reason == (
        "tensorboard is not installed (the dev flavor has it; pip install tensorboard)"
    )


@needs_tensorboard
def test_a_tensorboard_that_exits_fails_with_its_output(real_env, monkeypatch):
    def command(logdir, port):
        return [sys.executable, "-c", "import sys; print('no such flag: --logdir'); sys.exit(2)"]

    monkeypatch.setattr(board, "tensorboard_command", command)
    result = run_check(board.tensorboard, context(real_env))  # the full run serves
    assert result.status == "fail"
    assert result.reason == (
        "`tensorboard --logdir` exited with status 2 before serving: no such flag: --logdir"
    )


def test_a_tensorboard_that_never_answers_is_stopped_at_the_deadline(tmp_path, monkeypatch):
    monkeypatch.setattr(
        board, "tensorboard_command", lambda logdir, port: ["sleep", "60"]
    )  # never listens
    start = time.monotonic()
    with pytest.raises(CheckFailed, match=r"did not serve the run within 2 s \(URLError"):
        board.serve(tmp_path, timeout_s=2)
    assert time.monotonic() - start < 10  # stopped, not waited for


# --- a UID the image does not know -------------------------------------------------------------


@pytest.mark.parametrize(
    "chk", [torch_compile, deploy.quantize, deploy.export], ids=lambda c: c.name
)
def test_a_uid_without_a_name_fails_cleanly_with_the_fix(real_env, monkeypatch, chk):
    """`docker run --user 4242`: torch names its compile cache after the user, and fails."""
    import pwd

    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)

    def unknown(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", unknown)
    result = run_check(chk, context(real_env, device="cpu"))
    assert result.status == "fail"
    assert result.reason.startswith(f"UID {os.getuid()} has no /etc/passwd entry")
    assert "-e USER=$(id -un)" in result.reason
    monkeypatch.setenv("USER", "alice")
    assert nameless_user() is None
