"""The user's project as it declares itself, read as untrusted input inside its root.

`deps` puts the declarations together (what `[project]` in targets.toml asks for), from
`requirements` (pip's file format), `wheel` (the package's metadata, through its own build
backend), `groups` (PEP 735, PDM, Poetry) and `conda` (environment.yml); `torchpins` checks them
against a target's torch family before anything is resolved.

May import: the shared bases and torchenv.matrix. Nothing else of the kit.
"""
