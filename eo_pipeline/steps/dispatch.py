"""The one generic runner that applies a numba kernel to numpy- or dask-backed xarray objects.

Step 2 of the three layers (kernel -> runner -> public function). Public functions call
:func:`apply_kernel`; they never write their own ``apply_ufunc`` plumbing.

Inside dask tasks numba's thread pool is capped (see :func:`numba_threads`) so that dask's
worker threads and numba's ``prange`` threads do not oversubscribe the cores.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from eo_pipeline.errors import InputDataError
from eo_pipeline.kernels.arrays import native

__all__ = ["apply_kernel", "compile_notice", "numba_threads", "task_threads"]

_lock = threading.Lock()
_noticed = False
_FIRST_RUN_SECONDS = 30
"""Estimate shown by the notice. Measured: ``eo_pipeline.demo.warm_kernels()`` (the kernels of
every built-in workflow) took 83 s with a cold cache on 2 cores shared with other jobs, 4 s warm."""


def _marker() -> str:
    """File whose presence says this installation's kernels were compiled once already."""
    import numba

    from eo_pipeline._version import __version__

    root = getattr(numba.config, "CACHE_DIR", "") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels", "__pycache__"
    )
    return os.path.join(root, f"eo-pipeline-{__version__}-numba-{numba.__version__}.compiled")


def compile_notice() -> bool:
    """Say once that numba kernels are being compiled, on the first run of an installation.

    The first run compiles our kernels (numba ``cache=True``) and stores them beside the
    package (or in ``NUMBA_CACHE_DIR``); later runs load them in milliseconds. The first
    call in a process checks a marker file in that cache folder: when it is missing, one
    warning goes to the ``eo_pipeline`` logger ("compiling numba kernels, first run only,
    ~N s") and the marker is written. Returns whether the notice was given.

    Examples
    --------
    >>> isinstance(compile_notice(), bool)
    True
    """
    global _noticed
    with _lock:
        if _noticed:
            return False
        _noticed = True
    marker = _marker()
    if os.path.exists(marker):
        return False
    logging.getLogger("eo_pipeline").warning(
        "compiling numba kernels, first run only, ~%d s (cached afterwards)", _FIRST_RUN_SECONDS
    )
    with contextlib.suppress(OSError):  # a read-only install: numba caches elsewhere too
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        with open(marker, "w", encoding="utf-8") as f:
            f.write("numba kernels of this eo-pipeline version were compiled here once\n")
    return True


def task_threads(*, after_compute: bool = False) -> int:
    """Threads numba (or GDAL) may use inside one dask task.

    ``EO_PIPELINE_NUMBA_THREADS`` wins; inside a dask worker with several worker
    threads each task gets ``cores // worker_threads`` (at least 1); elsewhere all cores.
    ``after_compute``: the caller runs once the computation is over (a COG copy after the
    pixels were stored), so a threaded scheduler's pool is idle and only being inside one
    of its tasks caps the threads.
    """
    env = os.environ.get("EO_PIPELINE_NUMBA_THREADS")
    if env:
        return max(1, int(env))
    cores = os.cpu_count() or 1
    if after_compute and not _in_dask_thread():
        try:
            from distributed import get_worker

            get_worker()
        except (ImportError, ValueError, AttributeError):
            return cores
    try:
        from distributed import get_worker

        worker = get_worker()
        return max(1, cores // max(1, worker.state.nthreads))
    except (ImportError, ValueError, AttributeError):
        pass
    try:
        import dask

        if dask.config.get("scheduler", None) in {"threads", "threading"} or _in_dask_thread():
            return 1
    except ImportError:
        pass
    return cores


def _in_dask_thread() -> bool:
    name = threading.current_thread().name
    return name.startswith(("ThreadPoolExecutor", "Dask-"))


@contextlib.contextmanager
def numba_threads(n: int | None = None) -> Iterator[None]:
    """Cap numba's threads for the current thread while the block runs."""
    import numba

    n = task_threads() if n is None else n
    n = max(1, min(n, int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _capped(func: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        # numba compiles for native byte order only: a big-endian block is converted here,
        # once for every kernel, instead of failing as a TypingError inside the compiler
        args = tuple(native(a) if isinstance(a, np.ndarray) else a for a in args)
        with numba_threads():
            return func(*args, **kwargs)

    run.__name__ = getattr(func, "__name__", "kernel")
    return run


def apply_kernel(
    func: Callable[..., Any],
    *objs: xr.DataArray,
    output_dtypes: Sequence[np.dtype[Any] | type],
    input_core_dims: Sequence[Sequence[str]] | None = None,
    output_core_dims: Sequence[Sequence[str]] | None = None,
    output_sizes: dict[str, int] | None = None,
    kwargs: dict[str, Any] | None = None,
    name: str | None = None,
    attrs: dict[str, Any] | None = None,
    depth: Mapping[str, int] | None = None,
) -> Any:
    """Apply ``func`` (numpy arrays in, numpy array(s) out) to DataArrays, lazily when dask-backed.

    Parameters
    ----------
    func
        Called once per block with numpy arrays (core dims last) and ``kwargs``; returns one
        array, or a tuple of arrays when ``len(output_dtypes) > 1``.
    *objs
        Input DataArrays; aligned and broadcast by xarray.
    output_dtypes
        Explicit dtype of every output (never inferred: no silent float64).
    input_core_dims, output_core_dims, output_sizes
        As for :func:`xarray.apply_ufunc`; core dims must be a single chunk. A one-output
        kernel that consumes its core dims (a reduction over ``time``...) gets the dask
        blocks themselves, not the copies ``apply_ufunc`` would make.
    kwargs
        Extra keyword arguments for ``func`` (scalars, small arrays).
    name, attrs
        Name and attrs of the result(s); coordinates are kept by ``apply_ufunc``.
    depth
        Halo in elements per core dim (neighbourhood kernels): dask blocks are extended by
        this many elements from their neighbours (:func:`dask.array.map_overlap`, boundary
        ``"none"``) before ``func`` runs, and trimmed after; ``func`` then returns one array
        of its input blocks' shape. Every input must have these dims among its core dims.
        Numpy-backed inputs are passed whole.

    Returns
    -------
    xarray.DataArray or tuple of DataArray

    Raises
    ------
    InputDataError
        An input has no elements (a zero-size region): refused here, for every kernel.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.arange(4, dtype=np.float32), dims="x", attrs={"units": "1"})
    >>> apply_kernel(lambda v: v * np.float32(2), a, output_dtypes=[np.float32]).values
    array([0., 2., 4., 6.], dtype=float32)
    """
    for obj in objs:
        if getattr(obj, "size", 1) == 0:  # numpy, dask and numba each fail differently on it
            raise InputDataError(
                f"{name or getattr(func, '__name__', 'kernel')}: {getattr(obj, 'name', None)!r} "
                f"has no pixels (sizes {dict(obj.sizes)}); select a non-empty region or dates"
            )
    compile_notice()
    n_out = len(output_dtypes)
    core_in = input_core_dims or [[] for _ in objs]
    runner = _capped(func)
    mode: Literal["parallelized", "allowed"] = "parallelized"
    if depth and any(n > 0 for n in depth.values()):
        runner, mode = _overlapped(runner, core_in, depth, output_dtypes), "allowed"
    elif any(core_in) and n_out == 1 and not any(output_core_dims or []):
        runner, mode = _reduced(runner, core_in, output_dtypes[0]), "allowed"
    result = xr.apply_ufunc(
        runner,
        *objs,
        input_core_dims=core_in,
        output_core_dims=output_core_dims or [[] for _ in range(n_out)],
        dask=mode,
        output_dtypes=list(output_dtypes),
        dask_gufunc_kwargs={"output_sizes": output_sizes or {}, "allow_rechunk": False},
        kwargs=kwargs or {},
        keep_attrs=False,
    )
    results = result if isinstance(result, tuple) else (result,)
    # keep_attrs=False drops coordinate attrs too, and the CRS lives in spatial_ref's attrs
    coord_attrs: dict[Any, dict[str, Any]] = {}
    for obj in objs:
        for cname, coord in getattr(obj, "coords", {}).items():
            if coord.attrs and cname not in coord_attrs:
                coord_attrs[cname] = dict(coord.attrs)
    for r, dtype in zip(results, output_dtypes, strict=True):
        for cname, cattrs in coord_attrs.items():
            if cname in r.coords and not r.coords[cname].attrs:
                r.coords[cname].attrs.update(cattrs)
        if r.dtype != np.dtype(dtype):
            raise TypeError(f"kernel {name or func} returned {r.dtype}, declared {np.dtype(dtype)}")
        if attrs:
            r.attrs.update(attrs)
        if name is not None and n_out == 1:
            r.name = name
    return result


def _reduced(
    func: Callable[..., Any], core_dims: Sequence[Sequence[str]], dtype: np.dtype[Any] | type
) -> Callable[..., Any]:
    """Run a kernel that consumes its core dims (e.g. time) on dask blocks without a copy.

    ``apply_ufunc(dask="parallelized")`` hands core dims through ``blockwise(concatenate=True)``,
    which copies every input block (strided, as the core dims were transposed last) even
    when the core dims are one chunk; ``concatenate=False`` passes the blocks themselves.
    """
    out_dtype = np.dtype(dtype)

    def unwrap(*blocks: Any, **kwargs: Any) -> Any:
        arrays = []
        for block in blocks:
            while isinstance(block, list):  # one nesting level per contracted (core) dim
                (block,) = block
            arrays.append(block)
        return func(*arrays, **kwargs)

    def run(*arrays: Any, **kwargs: Any) -> Any:
        import dask.array as da

        if not any(isinstance(a, da.Array) for a in arrays):
            return func(*arrays, **kwargs)
        arrays = tuple(da.asarray(a) for a in arrays)
        n_loop = max(a.ndim - len(core) for a, core in zip(arrays, core_dims, strict=True))
        loop = tuple(f"loop{i}" for i in range(n_loop))
        args: list[Any] = []
        for a, core in zip(arrays, core_dims, strict=True):
            for ax, dim in enumerate(core, start=a.ndim - len(core)):
                if len(a.chunks[ax]) > 1:
                    raise ValueError(
                        f"Core dimension {dim!r} consists of multiple chunks; rechunk it "
                        "into a single chunk (e.g. .chunk({dim!r: -1})) first"
                    )
            ind = loop[n_loop - (a.ndim - len(core)) :] + tuple(f"core_{d}" for d in core)
            args += [a, ind]
        return da.blockwise(
            unwrap,
            loop,
            *args,
            concatenate=False,
            dtype=out_dtype,
            meta=np.empty((0,) * n_loop, dtype=out_dtype),
            **kwargs,
        )

    run.__name__ = getattr(func, "__name__", "kernel")
    return run


def _overlapped(
    func: Callable[..., Any],
    core_dims: Sequence[Sequence[str]],
    depth: Mapping[str, int],
    output_dtypes: Sequence[np.dtype[Any] | type],
) -> Callable[..., Any]:
    """Wrap ``func`` to run on dask blocks extended by ``depth`` (see :func:`apply_kernel`)."""
    if len(output_dtypes) != 1:
        raise ValueError("apply_kernel(depth=...) supports kernels with one output only")
    for core in core_dims:
        missing = [d for d in depth if d not in core]
        if missing:
            raise ValueError(
                f"apply_kernel(depth=...): dims {missing} must be core dims of every input"
            )
    dtype = np.dtype(output_dtypes[0])

    def run(*arrays: Any, **kwargs: Any) -> Any:
        import dask.array as da

        if not any(isinstance(a, da.Array) for a in arrays):
            return func(*arrays, **kwargs)
        arrays = tuple(da.asarray(a) for a in arrays)
        axes = [
            {a.ndim - len(core) + list(core).index(dim): dim for dim in depth}
            for a, core in zip(arrays, core_dims, strict=True)
        ]
        sizes = {dim: arrays[0].shape[ax] for ax, dim in axes[0].items()}
        # a halo as wide as the axis: that axis becomes one chunk (the whole neighbourhood)
        whole = {dim for dim, n in depth.items() if n >= sizes[dim]}
        if whole:
            arrays = tuple(
                a.rechunk({ax: -1 for ax, dim in ax_dims.items() if dim in whole})
                for a, ax_dims in zip(arrays, axes, strict=True)
            )
        depths = [
            {ax: 0 if dim in whole else int(depth[dim]) for ax, dim in ax_dims.items()}
            for ax_dims in axes
        ]
        return da.map_overlap(
            func,
            *arrays,
            depth=depths,
            boundary="none",
            trim=True,
            dtype=dtype,
            meta=np.empty((0,) * arrays[0].ndim, dtype=dtype),
            **kwargs,
        )

    run.__name__ = getattr(func, "__name__", "kernel")
    return run
