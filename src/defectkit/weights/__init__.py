"""Pretrained weights by name: the registry of official files, name resolution, explicit fetch."""
