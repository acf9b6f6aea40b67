from __future__ import annotations

from torchenv.proxy import BUILD_PROXY_VARS, PROXY_VARS


def test_builds_pass_each_proxy_variable_in_either_case():
    assert set(BUILD_PROXY_VARS) == set(PROXY_VARS) | {n.lower() for n in PROXY_VARS}
    assert "HTTPS_PROXY" in PROXY_VARS and "no_proxy" in BUILD_PROXY_VARS
