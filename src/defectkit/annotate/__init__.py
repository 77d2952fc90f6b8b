"""Overlays, review galleries and model-assisted labelling."""
