"""The export service: publishing product collections for sale (licence, providers, prices from the
sales config) and the export STAC API (server, index, customers, signed links), which needs the
``[export]`` extra (``pip install eo-pipeline[export]``).
"""
