"""Training the reference detectors that ship in ``core/models/`` (development only, PyTorch).

Outside the installed packages (``pyproject.toml``'s ``[tool.setuptools.packages.find]`` names
``core``, ``native``, ``bench``, ``hil`` and ``deploy`` only), so no device carries torch code;
the runtime needs nothing from here. Run from the repository root::

    python -m examples.training.train_detector --size s

:mod:`examples.training.detector_net` holds the network and its loss,
:mod:`examples.training.train_detector` the data, the training loop and the ONNX export; the
model card is measured and written by :mod:`core.models.model_card`.
"""
