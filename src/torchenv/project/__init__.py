"""The user's project as it declares itself: its dependencies, read where the project already
states them (`deps`). Everything here reads the project's files as untrusted input.

May import: the shared bases and torchenv.matrix. Nothing else of the kit.
"""
