"""Everything that reads or writes files: load (odc-stac), write (COG products), quicklooks,
ingest of delivered products (Landsat, Sentinel-2, DIMAP V2) into a STAC catalog, VRT mosaics,
the one COG writer and the one atomic-write helper.
"""
