"""The scene simulator and its physics: land cover, acquisition geometry, library spectra,
inverse radiometry (surface reflectance -> DN) and the DIMAP V2 writer. ``eo.simulate`` is the
entry point; simulated items carry their ground truth as assets.
"""
