"""The resolvers a lock can be made with (torchenv.lock.resolvers): one default, uv's."""

from __future__ import annotations

import pytest
from tests.support.fakerunner import FakeRunner

from torchenv.errors import UserError
from torchenv.lock import resolvers, uv_resolver


def test_the_default_is_uv_where_the_host_has_it_else_pip(monkeypatch):
    monkeypatch.setattr(uv_resolver, "executable", lambda: "/opt/uv")
    assert resolvers.default_resolver() == "uv" and resolvers.chosen(None) == "uv"
    monkeypatch.setattr(uv_resolver, "executable", lambda: None)
    assert resolvers.default_resolver() == "pip" and resolvers.chosen(None) == "pip"


def test_a_named_resolver_is_kept_and_an_unknown_one_is_one_line():
    assert resolvers.chosen("pip") == "pip"
    with pytest.raises(UserError, match=r"unknown resolver 'poetry': choose one of uv, pip"):
        resolvers.chosen("poetry")


def test_report_goes_to_the_resolver_asked_for(monkeypatch):
    called = []
    monkeypatch.setattr(uv_resolver, "report", lambda *a: called.append("uv") or [])
    monkeypatch.setattr(resolvers.pip_resolver, "pip_report", lambda *a: called.append("pip") or [])
    monkeypatch.setattr(uv_resolver, "executable", lambda: "/opt/uv")
    resolvers.report("3.11", None, "einops\n", FakeRunner())
    resolvers.report("3.11", None, "einops\n", FakeRunner(), resolver="pip")
    assert called == ["uv", "pip"]
