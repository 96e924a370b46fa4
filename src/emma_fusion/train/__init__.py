"""EMMA's self-supervised training: stage 1 (pseudo-sensing nets) and stage 2 (U-Fuser).

    from emma_fusion.train import load_config, train_sensing, train_fusion
    sensing_dir = train_sensing(load_config("sensing", "run.toml"))
    weights = train_fusion(load_config("fusion", "run.toml"))

See docs/TRAINING.md for the presets, the recipe for a 2-core CPU and the safeguards.
"""

from .config import (
    PRESETS,
    DataConfig,
    FusionConfig,
    MonitorConfig,
    OptimConfig,
    SensingConfig,
    TransformConfig,
    apply_overrides,
    load_config,
    preset,
    save_config,
)
from .fusion import train_fusion
from .sensing import train_sensing

__all__ = [
    "PRESETS",
    "DataConfig",
    "FusionConfig",
    "MonitorConfig",
    "OptimConfig",
    "SensingConfig",
    "TransformConfig",
    "apply_overrides",
    "load_config",
    "preset",
    "save_config",
    "train_fusion",
    "train_sensing",
]
