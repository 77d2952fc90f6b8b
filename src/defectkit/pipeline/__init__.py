"""The whole chain: ``defectkit demo`` on generated data and ``defectkit run PIPELINE.yaml``."""
