"""Binary search inside numba kernels (numba has no ``np.searchsorted`` with a range)."""
from __future__ import annotations

from numba import njit

__all__ = ["lower_bound"]


@njit(cache=True)
def lower_bound(values, lo, hi, value):
    """The first position ``p`` in ``[lo, hi)`` with ``values[p] >= value``, or ``hi``
    (``values[lo:hi]`` ascending), as ``np.searchsorted(values[lo:hi], value) + lo``.

    Example:
        >>> import numpy as np
        >>> v = np.array([1, 3, 3, 7])
        >>> int(lower_bound(v, 0, 4, 3)), int(lower_bound(v, 3, 4, 3)), int(lower_bound(v, 0, 4, 9))
        (1, 3, 4)
    """
    while lo < hi:
        mid = (lo + hi) >> 1
        if values[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo
