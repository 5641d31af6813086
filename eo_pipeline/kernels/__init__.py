"""Pure numba kernels on numpy arrays.

Rules: import only numpy, numba and math; ``@numba.njit(cache=True, nogil=True, fastmath=False)``
(``parallel=True`` with ``prange`` over rows where it pays); one loop over pixels writing into
a preallocated output; nodata/NaN handled explicitly; inputs' dtypes and units documented.
Nothing here imports xarray or dask; the only file written is the generated formula module of
``indices.py`` (a cache, through :mod:`eo_pipeline.atomic`). ``ephemeris.py`` is plain Python (the
scalar solar core metadata readers use without numba).
"""
