"""Secrets in URLs: only scheme, host, port and path are public (issue 20, items 1, 3 and 4)."""

import pytest
from tests.support import REPO
from tests.support.fakerunner import FakeRunner, reply

from torchenv import credentials, matrix
from torchenv.credentials import BUILD_PROXY_VARS, PROXY_VARS
from torchenv.engine import Engine
from torchenv.image import build

SECRET = "S3CRET"
BUILTIN = Engine("/usr/bin/docker", "20.10.24", "20.10.24", "builtin")


@pytest.mark.parametrize(
    ("url", "public"),
    [
        (f"https://gitlab-ci-token:{SECRET}@gitlab.example.com/o/r.git", "https://gitlab.example.com/o/r.git"),
        (f"https://git.example.com:8443/o/r.git?token={SECRET}#{SECRET}", "https://git.example.com:8443/o/r.git"),
        (f"ssh://git:{SECRET}@git.example.com:22/o/r.git", "ssh://git.example.com:22/o/r.git"),
        ("git@github.example:o/r.git", "github.example:o/r.git"),
        (f"me:{SECRET}@host.example:o/r.git", "host.example:o/r.git"),
        ("https://mirror.example/simple", "https://mirror.example/simple"),
        ("/srv/git/r.git", "/srv/git/r.git"),
    ],
)  # fmt: skip
def test_public_url_keeps_scheme_host_port_and_path_only(url, public):
    assert credentials.public_url(url) == public
    assert SECRET not in credentials.redacted(url)


def test_a_query_token_is_a_secret_and_redacted_keeps_the_user():
    index = credentials.parse_index_url(f"https://mirror.example/simple?token={SECRET}")
    assert index.has_credentials and index.public == "https://mirror.example/simple"
    assert credentials.redacted(f"https://me:{SECRET}@h.example/s") == "https://me:***@h.example/s"
    assert not credentials.parse_index_url("https://Mirror.example/simple").has_credentials


def test_a_rejected_url_is_echoed_without_its_secrets():
    with pytest.raises(credentials.UserError) as exc:
        credentials.parse_index_url(f"ftp://me:{SECRET}@mirror.example/simple?token={SECRET}")
    assert SECRET not in str(exc.value) and "ftp://mirror.example/simple" in str(exc.value)


def test_scrub_removes_the_secret_parts_from_a_tools_output():
    url = f"https://me:{SECRET}@mirror.example/simple?token={SECRET}"
    text = credentials.scrub(f"ERROR: cannot reach {url} (user me, pass {SECRET})", url)
    assert SECRET not in text and "mirror.example" in text


def test_the_source_label_holds_the_remote_without_its_token():
    runner = FakeRunner(
        {
            ("git", "remote", "get-url", "origin"): reply(
                f"https://gitlab-ci-token:{SECRET}@gitlab.example.com/o/r.git?x={SECRET}\n"
            ),
            ("git", "rev-parse", "HEAD"): reply("abc\n"),
            ("git", "status"): reply(""),
        }
    )
    found = build.provenance(REPO, runner)
    assert found["SOURCE"] == "https://gitlab.example.com/o/r.git"
    argv, _ = build.build_command(
        build.BuildRequest(target=matrix.get("cuda13")), BUILTIN, labels=found, environ={}
    )
    assert "SOURCE=https://gitlab.example.com/o/r.git" in argv and SECRET not in " ".join(argv)


def test_builds_pass_each_proxy_variable_in_either_case():
    assert set(BUILD_PROXY_VARS) == set(PROXY_VARS) | {n.lower() for n in PROXY_VARS}
    assert "HTTPS_PROXY" in PROXY_VARS and "no_proxy" in BUILD_PROXY_VARS
