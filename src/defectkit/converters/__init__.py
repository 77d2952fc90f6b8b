"""Masks to instances to COCO / Ultralytics YOLO / Pascal VOC, and readers back."""
