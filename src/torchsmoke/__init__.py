"""torchsmoke: the in-image smoke suite. `python -m torchsmoke` proves an environment trains.

It runs inside every torchenv image and on any Python with torch, and imports only the standard
library and torch (torchvision, torchaudio, PIL, TorchCodec and tensorboard lazily: they may be
missing), and torchbuild, the standard-library helpers the images carry beside it.

Checks (in order; `--list` shows them, `--only a,b` / `--skip a,b` select):
env, expect, mlp, cnn, vision, image_io, audio, audio_io, autograd, checkpoint, determinism,
dataloader, ddp, amp, cuda, cuda_libs, compile, quantize, export, tensorboard. Each ends pass, fail or skip, with a reason for every
skip and failure (and a note on some passes), and its duration; one failing or raising check never
stops the others.

Modules (tests/torchsmoke/test_<module>.py tests each; checks/<m>.py: tests/torchsmoke/checks/):
cli (the entry: `--list`, or the suite run), suite (runs a parsed command line), rerun (a failed
check again in a fresh interpreter), core (what a check sees and returns, `@check`; the isolating
runner), report (result lines, the closing line, JSON, JUnit), options (the command line: flags,
exit codes, parsed once; the inverse a re-run gets), checks/__init__ (the one table of checks:
name, module, summary; what a check is), checks/<name> (each check, its module named after it;
training holds mlp, cnn, amp and determinism, vision_audio holds vision and audio), train (data,
models and the loop the checks train with), envinfo (the environment report), userenv (any UID).
They import each other one way only (tests/torchsmoke/test_layout.py): options and checks/__init__
at the bottom, then core, the check modules, report, rerun, suite, and cli on top.

Usage::

    python -m torchsmoke                        # every check
    python -m torchsmoke --quick                # smaller budget (dev-container start-up)
    python -m torchsmoke --only env --json env.json
    python -m torchsmoke --expect-variant cu118 --expect-torch 2.7.1 \\
        --expect-torchvision 0.22.1 --expect-torchaudio 2.7.1 --expect-python 3.11 --require-gpu
    python -m torchsmoke --device cpu --seed 3 --json report.json --junit report.xml

Exit status: 0 when no check failed, 1 when one did, 2 for a usage error (an unknown check name
included: the message lists the valid ones).

JSON report (`--json PATH`), schema "torchsmoke/report/v1"::

    {
      "schema": "torchsmoke/report/v1",
      "created": "2026-11-23T15:28:00Z",          # ISO 8601, UTC
      "argv": ["--only", "env", "--json", "env.json"],
      "env": {                                    # envinfo.EnvReport, dataclasses.asdict
        "python": {"version", "implementation", "executable"},
        "os": {"system", "release", "machine", "distro", "glibc"},
        "cpu_count": int|null, "memory_bytes": int|null, "memory_limit_bytes": int|null,
        "torch": {"version": "2.7.1+cu118", "variant": "cu118", "cuda": "11.8"|null,
                  "cudnn": int|null, "nccl": str|null, "hip": str|null,
                  "cuda_available": bool, "num_threads": int,
                  "arch_list": ["sm_75", ...]|null},     # kernel archs (no GPU needed)
        "torchvision": {"version", "build", "variant"}|null,   # null: not installed;
        "torchaudio": {"version", "build", "variant"}|null,    # build: "0.26.0+cu130"
        "gpus": [{"index", "name", "capability": "9.0", "memory_bytes"}],
        "driver_version": str|null,              # NVIDIA kernel driver
        "shm_bytes": int|null,                   # size of /dev/shm
        "compilers": {"cc": path|null, "cxx": path|null},
        "env_vars": {"NVIDIA_...": "...", "CUDA_...": "..."}
      },
      "checks": [{"name": str, "status": "pass"|"fail"|"skip", "reason": str|null,
                  "duration_s": float, "details": {...}}],   # in run order
      "summary": {"pass": int, "fail": int, "skip": int, "duration_s": float}
    }

While the suite runs, the JSON report is rewritten (whole, by rename) before the first check and
after each one, with two more keys: "partial": true and "running": the name of the check now
running; a run that is stopped (a timeout) leaves that partial report behind. The final report
has neither key.

Missing pieces of the environment are null, never an error. A failed check that raised has its
traceback in details["traceback"]. Additions keep the schema name; a change to these keys would
get a new one. `--junit PATH` writes JUnit XML: one testcase a check, failure/skipped elements
carrying the reason.
"""

from torchbuild import __version__ as __version__  # the kit's one version
