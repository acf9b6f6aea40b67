"""Running built images: the smoke suite (`smoke`, one container; `multinode`/`multinode_run`,
several; `k8s`, a Kubernetes manifest of the same), the suite's command line and its JSON report on
the host (`suite`, `report`), and a shell or the project's tests in an image (`shell`,
`project_tests`).

May import: the shared bases, torchenv.matrix, torchenv.engine and torchbuild. Never
torchenv.lock, torchenv.image, torchenv.doctor or the entry points.
"""
