import sys

from tests.support.fakerunner import FakeRunner, reply

from torchenv.runner import NOT_FOUND, TIMED_OUT, Result, subprocess_runner

PY = sys.executable


def test_subprocess_runner_captures_output_and_status():
    result = subprocess_runner(
        [PY, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"]
    )
    assert result.args[0] == PY
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.ok
    assert result.first_error_line() == "err"


def test_subprocess_runner_missing_executable_is_127():
    result = subprocess_runner(["/nonexistent/torchenv-no-such-tool", "--version"])
    assert result.returncode == NOT_FOUND
    assert result.stderr == "not found: /nonexistent/torchenv-no-such-tool"


def test_subprocess_runner_timeout_is_124():
    result = subprocess_runner(
        [PY, "-c", "import time; print('started', flush=True); time.sleep(30)"], timeout=1
    )
    assert result.returncode == TIMED_OUT
    assert "timed out after 1s" in result.stderr


def test_subprocess_runner_env_adds_to_inherited(monkeypatch):
    monkeypatch.setenv("TORCHENV_INHERITED", "kept")
    code = "import os; print(os.environ['TORCHENV_INHERITED'], os.environ['TORCHENV_EXTRA'])"
    result = subprocess_runner([PY, "-c", code], env={"TORCHENV_EXTRA": "added"})
    assert result.stdout.split() == ["kept", "added"]


def test_fake_runner_longest_prefix_wins_and_records_calls():
    fake = FakeRunner(
        {
            ("docker",): reply("generic"),
            ("docker", "version"): reply("specific", returncode=1, stderr="boom"),
            ("echo",): lambda argv: reply(" ".join(argv[1:])),
        }
    )
    assert fake(["docker", "version", "--format", "x"]).stdout == "specific"
    assert fake(["docker", "info"]).stdout == "generic"
    echoed = fake(["echo", "a", "b"], timeout=5, env={"K": "V"})
    assert echoed == Result(("echo", "a", "b"), 0, "a b", "")
    assert fake.calls[2].timeout == 5 and fake.calls[2].env == {"K": "V"}
    assert fake.ran("docker", "info") and not fake.ran("docker", "buildx")


def test_fake_runner_unknown_command_looks_missing():
    result = FakeRunner()(["nvidia-smi"])
    assert result.returncode == NOT_FOUND and result.stderr == "not found: nvidia-smi"
    assert result.first_error_line() == "not found: nvidia-smi"


def test_streamed_output_reaches_the_sink_line_by_line_and_the_result_keeps_it():
    seen = []
    code = (
        "import sys; print('a', flush=True); print('b', file=sys.stderr, flush=True); sys.exit(2)"
    )
    result = subprocess_runner([PY, "-c", code], on_line=seen.append)
    assert seen == ["a\n", "b\n"]
    assert (result.returncode, result.stdout, result.stderr) == (2, "a\nb\n", "")


def test_input_reaches_stdin_captured_and_streamed(tmp_path):
    code = "import sys, os; print(sys.stdin.read().upper(), os.getcwd())"
    captured = subprocess_runner([PY, "-c", code], input="from x\n", cwd=tmp_path)
    assert captured.stdout.split() == ["FROM", "X", str(tmp_path)]
    streamed = subprocess_runner([PY, "-c", code], input="y", on_line=lambda line: None)
    assert streamed.stdout.split()[0] == "Y"


def test_streamed_missing_executable_is_127():
    result = subprocess_runner(["/nonexistent/torchenv-tool"], on_line=lambda line: None)
    assert result.returncode == NOT_FOUND


def test_interactive_returns_the_status_only():
    result = subprocess_runner([PY, "-c", "import sys; sys.exit(4)"], interactive=True)
    assert (result.returncode, result.stdout) == (4, "")


def test_fake_runner_streams_its_canned_output():
    fake = FakeRunner({("docker", "build"): reply("#1 step\n#2 done\n", 1, "boom\n")})
    seen = []
    result = fake(["docker", "build", "."], on_line=seen.append, input="FROM x\n")
    assert seen == ["#1 step\n", "#2 done\n", "boom\n"]
    assert result.stdout == "#1 step\n#2 done\nboom\n" and result.returncode == 1
    assert fake.calls[0].input == "FROM x\n"


def test_an_interrupted_stream_stops_the_commands_whole_process_group(tmp_path):
    """Ctrl-C (or SIGTERM made one) while streaming: the command and what it started end."""
    import os
    import time

    import pytest

    script = "import subprocess, sys; p = subprocess.Popen(['sleep', '60']); print(p.pid, flush=True); p.wait()"
    pids = []

    def line(text):
        pids.append(int(text))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        subprocess_runner([PY, "-c", script], on_line=line)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pids[0], 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the grandchild {pids[0]} still runs")
