from __future__ import annotations

import signal

import pytest

from torchenv.engine.interrupts import sigterm_as_ctrl_c


def test_sigterm_is_ctrl_c_inside_the_block_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="signal 15"), sigterm_as_ctrl_c():
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before
