"""Numba kernels of lshdisk: arrays and scalars in, arrays out."""
