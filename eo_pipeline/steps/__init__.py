"""The xarray/dask layer of each stage of the data flow.

Each module wraps kernels from :mod:`eo_pipeline.kernels` for xarray objects (numpy or dask
backed) through the one dispatch helper, :func:`eo_pipeline.steps.dispatch.apply_kernel`:
calibration (DN -> radiance -> reflectance), masking (QA bits and spectral tests), spectral
indices (+ the index catalogue read from spyndex), compositing over time and pan-sharpening.
The public functions are re-exported from :mod:`eo_pipeline` (``eo.calibrate``, ``eo.masks``...).
"""
