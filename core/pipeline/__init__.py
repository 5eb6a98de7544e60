"""The edge pipeline: source → preprocess → infer → postprocess → filter → compress → sink.

>>> from core.pipeline import Pipeline, PipelineConfig
>>> sorted(name for name in __all__ if name[0].isupper())[:3]
['FrameOutcome', 'ModelConfig', 'Pipeline']

See :mod:`core.pipeline.runtime` for how it runs, :mod:`core.pipeline.config` for the
configuration, :mod:`core.pipeline.stages` for what each stage does.
"""

from core.pipeline.config import ModelConfig, PipelineConfig, load_pipeline_config
from core.pipeline.observe import FrameOutcome, RunObserver, Window
from core.pipeline.report import PipelineProgress, PipelineReport, StageCost, StreamReport
from core.pipeline.runtime import Pipeline
from core.pipeline.stages import STAGES, Stage, StageCallWrapper

__all__ = [
    "STAGES",
    "FrameOutcome",
    "ModelConfig",
    "Pipeline",
    "PipelineConfig",
    "PipelineProgress",
    "PipelineReport",
    "RunObserver",
    "Stage",
    "StageCallWrapper",
    "StageCost",
    "StreamReport",
    "Window",
    "load_pipeline_config",
]
