"""Images: what goes into a target's image and what is done with it once built.

Owns the build (`build`: the request, its command line, its failures; `labelstep`: the labels
added on top of the built image), images reused by content from a registry (`contentkey`: the
hash of an image's inputs; `reuse`: pull it, or build with the registry's cache and push), the
build context staged into the project's `.torchenv/` (`context`), the files rendered from the matrix (`render`,
`generate`, `devcontainer`), the project's own wheel (`package`), uv's pin in the image (`uv`),
and what happens to a built image: `verify` (with `livescan`), `publish`, `export`, `clean`,
`lint` (the Dockerfiles and the kit's code).

May import: the shared bases (torchenv.errors, files, runner, credentials, hints), torchenv.matrix,
torchenv.project, torchenv.lock, torchenv.engine, torchenv.kit, and torchbuild. Never torchenv.run,
torchenv.doctor or the entry points (tasks, taskopts, cli, scaffold).
"""
