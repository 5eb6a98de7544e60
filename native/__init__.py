"""edgeloop's compiled core: ring-slot atomics, pixel kernels, NMS, motion score, libjpeg-turbo.

Nothing here knows about frames, configs or I/O; ``core`` is the friendly layer on top. The kernel
contract and the choice of implementation live in :mod:`native.kernels`.
"""
