"""Policy models: loading by name, folder or Hub id (:mod:`~seele_agents.models.loading`) and the
embedded tiny Llama built locally for the CPU demo (:mod:`~seele_agents.models.tiny`).

The loading functions are importable from here, as before the package was split.
"""

from seele_agents.models.loading import (
    DTYPES,
    SMOLLM2_FOLDER_NAME,
    ModelLoadError,
    apply_lora,
    count_parameters,
    default_cache_dir,
    enable_gradient_checkpointing,
    load_model,
    merged_state_dict,
    resolve_device,
    resolve_dtype,
    save_merged,
    smollm2_folder,
)

__all__ = [
    "DTYPES",
    "SMOLLM2_FOLDER_NAME",
    "ModelLoadError",
    "apply_lora",
    "count_parameters",
    "default_cache_dir",
    "enable_gradient_checkpointing",
    "load_model",
    "merged_state_dict",
    "resolve_device",
    "resolve_dtype",
    "save_merged",
    "smollm2_folder",
]
