"""The one exception root for what the user can fix: tasks and the `torchenv` command turn it into
a one-line message, never a traceback.

Every error the kit raises on purpose derives from UserError: lock files' (torchenv.lock.lockfile
LockError), the engine's (torchenv.engine: EngineError, ImageNotBuilt, and sdk.CallFailed with
its kinds), a timed-out smoke run (torchenv.run.smoke TimedOut). torchbuild, which runs in the
image and knows nothing of the kit, raises its own EnvFileError: torchenv.matrix.Target.read_env
turns it into a UserError, the one place the kit reads an env file.
"""


class UserError(Exception):
    """Bad input or a host problem the user can fix; the message says what is wrong and what to do."""


class Problems(UserError):
    """Several problems found in one run, each a line of its own (a project's every problem is
    said at once, not one per run)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = [" ".join(str(line).splitlines()) for line in lines]
        super().__init__("\n".join(self.lines))
