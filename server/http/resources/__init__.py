"""Falcon resources, one module per part of the HTTP API: images, derived images, recipes and health."""
