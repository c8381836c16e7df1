"""COCO-format instance annotations of demo scenes (readable by pycocotools).

Category names are the shape words used in the dialogs, so that matching a
detector's class names against question words works as it would on COCO.
"""

from __future__ import annotations

from .scenes import SHAPES, Scene

CATEGORY_ID = {shape: k + 1 for k, shape in enumerate(SHAPES)}


def xywh(box: tuple[float, float, float, float]) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)]


def coco_instances(images: list[tuple[int, str, Scene]], description: str) -> dict:
    """`images` = [(image_id, file_name, scene)] -> the COCO instances dict of that image set."""
    coco: dict = {
        "info": {"description": description, "version": "1.0"},
        "licenses": [],
        "images": [],
        "annotations": [],
        "categories": [{"id": CATEGORY_ID[s], "name": s, "supercategory": "shape"} for s in SHAPES],
    }
    for image_id, file_name, scene in images:
        coco["images"].append({"id": image_id, "file_name": file_name, "width": scene.width, "height": scene.height})
        for obj in scene.objects:
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1,
                "image_id": image_id,
                "category_id": CATEGORY_ID[obj.shape],
                "segmentation": [[c for point in obj.polygon for c in point]],
                "area": round(obj.area(), 2),
                "bbox": xywh(obj.box),
                "iscrowd": 0,
            })
    return coco
