"""Row copies for the search kernels."""

import numba


@numba.njit(cache=True, nogil=True, inline="always")
def copy_row(src, dst):
    """dst[j] = src[j] for j < len(dst) (1-D arrays, any strides; ``src`` at least as long).

    An explicit loop: numba's ``dst[:] = src`` checks the two for overlap and copies through a
    generic strided path, about 25 times slower for a 4 KiB page.
    """
    for j in range(dst.shape[0]):
        dst[j] = src[j]
