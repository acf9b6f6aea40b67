"""torchenv's host kit: the target matrix and the logic behind the invoke tasks and the
`torchenv` command. Nothing here goes into an image; the in-image smoke suite is the separate
`torchsmoke` package, and `torchbuild` holds the standard-library helpers the build carries.

The house, by concern (each package's docstring says what it owns and what it may import):

- entry points, at the top: `tasks` (the invoke collection), `taskopts` (its options, each
  declared once), `cli` (the `torchenv` command), `scaffold` (`torchenv init`);
- shared bases, imported by everything below: `errors` (the one exception root), `files`,
  `runner` (every host command), `credentials` (secrets in URLs, proxies), `hints` (why
  something failed, in one line);
- `matrix` (targets.toml and what can exist), `project` (what the user's project declares),
  `lock` (locks), `image` (building and handling images), `run` (running them), `doctor`,
  `engine` (the one owner of Docker), `kit` (the files the build stages).

Public surface (PUBLIC below): what users' projects and the files `torchenv init` writes use;
it changes only with the kit's version (`__version__`, torchbuild's: the kit's one version, which
`torchenv --version` prints). Everything else may move without notice.
"""

from torchbuild import __version__ as __version__

# module -> the names of it that users' projects, generated files and CI may use
PUBLIC: dict[str, tuple[str, ...]] = {
    "torchenv.tasks": ("ns",),
    "torchenv.matrix": (
        "load", "names", "get", "project", "ci", "find_root", "project_root", "main", "Target",
        "Project", "CI", "FLAVORS", "INSTALLERS", "MATRIX_NAME",
    ),  # and `python -m torchenv.matrix [--json] [--event EVENT [--ref R --default-branch B]]`
    "torchenv.cli": ("main",),  # the `torchenv` command
    "torchenv.run.report": ("main",),  # `python -m torchenv.run.report`: CI job summaries
}  # fmt: skip
