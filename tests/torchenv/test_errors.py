from __future__ import annotations

from torchenv.engine import EngineError, ImageNotBuilt
from torchenv.errors import UserError


def test_the_kits_one_line_errors_are_user_errors():
    assert issubclass(EngineError, UserError) and issubclass(ImageNotBuilt, UserError)
    assert str(UserError("bad input: do this")) == "bad input: do this"
