import re
import subprocess

import pytest
from tests.support import REPO as ROOT

from torchenv import matrix
from torchenv.image import render


def _instructions(text: str) -> list[str]:
    """The Dockerfile's instructions (keyword and stage name), in order."""
    out = []
    for line in text.splitlines():
        match = re.match(r"^(FROM|RUN|COPY|USER|ARG|ENV|LABEL|WORKDIR|CMD|SHELL)\b(.*)", line)
        if match:
            stage = re.search(r" AS (\S+)", match.group(2))
            out.append(match.group(1) + (f" {stage.group(1)}" if stage else ""))
    return out


@pytest.mark.parametrize("name", matrix.names())
def test_dockerfiles_share_one_body(name):
    """Every target's Dockerfile has the same instructions and stages, in the same order."""
    assert _instructions(render.dockerfile(matrix.get(name))) == _instructions(
        render.dockerfile(matrix.get("cuda13"))
    )


def test_cuda_dockerfile_sets_nvidia_variables_and_nothing_secret():
    text = render.dockerfile(matrix.get("cuda118"))
    assert 'NVIDIA_REQUIRE_CUDA="cuda>=11.8"' in text
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in text
    assert "--mount=type=secret,id=ca_cert" in text
    for forbidden in ("ssl_verify", "COPY --from", "PIP_CERT=", "ADD "):
        assert forbidden not in text
    assert "NVIDIA_" not in render.dockerfile(matrix.get("cpu"))


def test_layer_order_dependencies_before_source():
    text = render.dockerfile(matrix.get("cuda13"))
    runtime = text[text.index("AS runtime") :]
    assert text.index("install-env.sh uv cuda13") < text.index("AS runtime")
    assert text.index("install-env.sh pip cuda13") < text.index("AS runtime")
    # The report reads the torch family alone: below the project's dependencies (adding one does
    # not redo it), in both flavors' common stages; the smoke package and the project come later.
    report = text.index("python /tmp/ctx/envinfo.py --json /opt/torchenv/env-report.json")
    assert text.index("AS compiler") < report < text.index("install-env.sh project cuda13")
    assert text.count("envinfo.py --json") == 1
    assert "envinfo.py" not in runtime
    assert runtime.rstrip().endswith('CMD ["python", "-m", "torchsmoke"]')
    assert text.rstrip().endswith('CMD ["python", "-m", "torchsmoke"]')  # runtime is the default


def test_base_is_pinned_by_digest_in_every_dockerfile():
    for t in matrix.load().values():
        assert f"ARG BASE_IMAGE={t.base_image}@sha256:" in render.dockerfile(t)


def test_hadolint_passes_on_every_dockerfile(tool):
    files = [str(t.dockerfile) for t in matrix.load().values()]
    done = subprocess.run([tool("hadolint"), *files], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_install_step_can_read_the_index_secret():
    from torchenv.image import render

    for target in matrix.load().values():
        text = render.dockerfile(target)
        # every step that installs from the target's index: conda, uv, pip and the dev extras
        # (the venv step installs nothing; uv itself comes from pip's default index)
        installs = len(re.findall(r"bash /tmp/ctx/install-env.sh (conda|uv|pip|extras) ", text))
        assert text.count("--mount=type=secret,id=index_url,mode=0444") == installs == 4


def test_fill_replaces_fields_and_keeps_if_blocks_only_where_their_flag_is_set():
    template = "A={{X}}\n{{if F}}\nonly-f {{X}}\n{{end}}\nlast\n"
    assert render.fill(template, {"X": "1"}, {"F": True}) == "A=1\nonly-f 1\nlast\n"
    assert render.fill(template, {"X": "1"}, {"F": False}) == "A=1\nlast\n"


def test_fill_refuses_what_the_caller_did_not_give():
    with pytest.raises(KeyError):
        render.fill("{{Y}}\n", {}, {})
    with pytest.raises(ValueError, match="without its"):
        render.fill("{{if F}}\nx\n", {}, {"F": True})


def test_the_template_holds_all_the_text_python_fills_values_only():
    source = (ROOT / "src" / "torchenv" / "image" / "render.py").read_text()
    for dockerfile_text in ("RUN ", "--mount=", "FROM ", "LABEL "):
        assert dockerfile_text not in source
    fields = set(re.findall(r"\{\{([A-Z_]+)\}\}", render.TEMPLATE.read_text()))
    assert fields == set(render.values(matrix.get("cuda13")))


def test_a_label_value_cannot_end_its_quotes_or_expand_a_variable():
    assert render.label_value('say "hi" $HOME \\') == 'say \\"hi\\" \\$HOME \\\\'


def test_the_projects_package_is_the_runtime_stages_last_install_and_only_when_asked():
    t = matrix.get("cuda13")
    plain, with_pkg = render.dockerfile(t, package=False), render.dockerfile(t, package=True)
    assert ".torchenv/package" not in plain and "install-env.sh package" not in plain
    runtime = with_pkg[with_pkg.index("AS runtime") :]
    runs = [i for i in _instructions(runtime) if i.startswith(("RUN", "COPY"))]
    assert runs[-1] == "RUN" and "install-env.sh package cuda13" in runtime
    assert runtime.index("COPY .torchenv/kit/torchsmoke") < runtime.index("install-env.sh package")
    dev = with_pkg[with_pkg.index("AS dev\n") : with_pkg.index("AS runtime")]
    assert "install-env.sh package" not in dev  # the dev container installs it editable
    assert render.dockerfile(t) == plain  # this repository: [project] package = false
