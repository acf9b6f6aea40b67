"""What the check tests share: the real environment report, and contexts around doctored ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from torchsmoke import envinfo
from torchsmoke.core import Context
from torchsmoke.options import Options


@pytest.fixture(scope="session")
def real_env() -> envinfo.EnvReport:
    return envinfo.collect()


def make_context(env: envinfo.EnvReport, **options: Any) -> Context:
    """A context whose environment report is the given (possibly doctored) one."""
    ctx = Context(Options(**options))
    ctx.env = env  # replaces the cached property's value
    return ctx


def replace_torch(env: envinfo.EnvReport, **changes: Any) -> envinfo.EnvReport:
    return replace(env, torch=replace(env.torch, **changes))


@pytest.fixture
def context() -> Callable[..., Context]:
    """`context(env, **options)`: a Context around that environment report."""
    return make_context


@pytest.fixture
def with_torch() -> Callable[..., envinfo.EnvReport]:
    """`with_torch(env, **changes)`: the report with its torch fields changed."""
    return replace_torch
