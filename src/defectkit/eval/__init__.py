"""Metrics (pycocotools, scikit-learn wrapped) and the comparison report."""
