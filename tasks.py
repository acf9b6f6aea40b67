"""torchenv's tasks (`invoke --list`): the kit's collection, plus this repository's own `lint`."""

from torchenv.tasks import ns

__all__ = ["ns"]
