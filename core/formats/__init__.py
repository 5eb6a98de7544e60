"""Model output formats: which one a model has (``model.format``) and how its outputs decode
(docs/decisions/0026-model-formats-read-never-guessed.md).

>>> from core.formats import FORMATS
>>> list(FORMATS)
['edgeloop', 'yolov8', 'yolov5', 'yolox', 'end2end', 'ssd', 'classifier', 'raw']
"""

from core.coco import COCO
from core.formats.base import DecodeOptions, Decoder, ModelFacts, ModelFormat, OutputShape
from core.formats.choose import FORMATS, choose_format, format_named
from core.formats.facts import backend_facts, read_metadata
from core.formats.labels import load_labels, names_from_metadata

__all__ = [
    "COCO",
    "FORMATS",
    "DecodeOptions",
    "Decoder",
    "ModelFacts",
    "ModelFormat",
    "OutputShape",
    "backend_facts",
    "choose_format",
    "format_named",
    "load_labels",
    "names_from_metadata",
    "read_metadata",
]
