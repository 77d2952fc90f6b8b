"""Masks to instances to COCO / Ultralytics YOLO / Pascal VOC, and readers back.

Importing this package loads numpy only; cv2 and pycocotools are imported when used.
"""

from defectkit.converters.coco import (
    annotation_mask,
    build_coco,
    coco_categories,
    coco_masks,
    instances_to_coco_annotations,
    load_coco,
    masks_to_coco,
    validate_coco,
)
from defectkit.converters.convert import ConvertConfig, ConvertReport, convert_dataset, load_manifest
from defectkit.converters.instances import (
    DEFAULT_MIN_AREA,
    DEFAULT_SIMPLIFY,
    Instance,
    decode_rle,
    encode_rle,
    mask_to_instances,
)
from defectkit.converters.polygons import mask_iou, rasterize_coco, rasterize_cv2
from defectkit.converters.voc import parse_voc_boxes, voc_xml
from defectkit.converters.yolo import (
    coco_to_yolo_lines,
    data_yaml,
    instances_to_yolo_lines,
    masks_to_yolo_lines,
    natural_name,
    parse_yolo_lines,
    yolo_segment_to_coco,
)

__all__ = [
    "DEFAULT_MIN_AREA",
    "DEFAULT_SIMPLIFY",
    "ConvertConfig",
    "ConvertReport",
    "Instance",
    "annotation_mask",
    "build_coco",
    "coco_categories",
    "coco_masks",
    "coco_to_yolo_lines",
    "convert_dataset",
    "data_yaml",
    "decode_rle",
    "encode_rle",
    "instances_to_coco_annotations",
    "instances_to_yolo_lines",
    "load_coco",
    "load_manifest",
    "mask_iou",
    "mask_to_instances",
    "masks_to_coco",
    "masks_to_yolo_lines",
    "natural_name",
    "parse_voc_boxes",
    "parse_yolo_lines",
    "rasterize_coco",
    "rasterize_cv2",
    "validate_coco",
    "voc_xml",
    "yolo_segment_to_coco",
]
