"""Standard-library-only code shared by the image build, the images and the host.

The build bind-mounts this folder and runs its modules (`python -m torchbuild.envfile ...`), the
images carry it next to the smoke suite, and the host kit (`torchenv`) imports it:

- `envfile`: the env files (envs/<target>.yml), rendered and parsed;
- `manifest`: every installed file of an environment with its sha256;
- `buildinfo`: /opt/torchenv/build-info.json, what the build did (installer, lock mode);
- `versions`: the one version parser, and the minimum NVIDIA driver of each CUDA toolkit.
- `archs`: which of a torch build's GPU kernels (`sm_XY`, PTX `compute_XY`) run on a GPU of a
  given compute capability, by CUDA's rules; the `cuda` smoke check and the doctor share it.
"""

# The kit's one version: pyproject.toml reads it ([tool.setuptools.dynamic]), and torchenv and
# torchsmoke re-export it. A release is tagged v<this>; the release workflow refuses another tag.
__version__ = "0.2.0"
