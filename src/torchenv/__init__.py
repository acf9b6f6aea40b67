"""torchenv host-side library: the target matrix and the logic behind the invoke tasks.

Nothing here goes into an image; the in-image smoke suite is the separate `torchsmoke` package.
"""
