"""Sensors, scene metadata readers, STAC items and collections, validation, publishing, export API."""
