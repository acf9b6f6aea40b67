"""pip's resolver (torchenv.lock.pip_resolver): the host it needs, the settings it keeps."""

from __future__ import annotations

import os

import pytest

from torchenv.errors import UserError
from torchenv.lock import pip_resolver


def test_wrong_host_is_refused(monkeypatch):
    monkeypatch.setattr(pip_resolver.sys, "platform", "darwin")
    with pytest.raises(UserError, match="Linux x86_64 with Python 3.11"):
        pip_resolver.check_host("3.11")


def test_clean_pip_env_keeps_network_settings_only():
    prefix, env = pip_resolver.clean_pip_env(
        {
            "PIP_FIND_LINKS": "/opt/wheels",
            "PIP_EXTRA_INDEX_URL": "file:///x",
            "PIP_PRE": "1",
            "PIP_CERT": "/ca.pem",
            "HTTPS_PROXY": "http://proxy:3128",
        }
    )
    assert prefix == ["env", "-u", "PIP_EXTRA_INDEX_URL", "-u", "PIP_FIND_LINKS", "-u", "PIP_PRE"]
    assert env["PIP_CONFIG_FILE"] == os.devnull
    assert pip_resolver.clean_pip_env({"PIP_CERT": "/ca.pem"})[0] == []
