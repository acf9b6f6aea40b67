"""Locks: a target's pins and the project's dependencies resolved to exact, hashed versions.

A ladder, each module importing only those below it: `gate` (a build's lock, made first when
missing or stale) -> `resolve` (`invoke lock`: the locks of a target, the dry run) -> `drift`
(does a lock still say what its inputs ask?) -> `overlays` (the locks above the pip lock: the
project's dependencies, the dev extras) -> the resolvers -> `lockfile` (the lock files' format).
`outdated` (newer torch releases for `invoke matrix --outdated`) sits beside them.

May import: the shared bases, torchenv.matrix, torchenv.project, torchenv.kit and torchbuild.
Never torchenv.image, torchenv.run, torchenv.doctor, torchenv.engine or the entry points.
"""
