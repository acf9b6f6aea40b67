"""`invoke doctor`: can this host build and run the targets? `checkup` puts the rows together
from `engine_checks` (the Docker engine) and `host_checks` (driver, GPUs, disk, proxy);
`gpufit` (do a target's kernels fit this host's GPUs?) is also asked before a run.

May import: the shared bases, torchenv.matrix, torchenv.engine and torchbuild. Never
torchenv.lock, torchenv.image, torchenv.run or the entry points.
"""
