"""Experiment configs: Python files with ``get_config() -> ml_collections.ConfigDict``,
validated once at load against a schema per section.

Overrides use dotted paths, ``--config.models.vae.training.num_epochs=2``; the value is parsed
to the type of the field it replaces. Unknown keys, missing required keys, wrong types and values
out of range are refused with the key's path and the closest known key
(:mod:`jaxrobust.config.schema`; the sections: :mod:`jaxrobust.config.sections`). The resolved
config (every default filled in) is stored as JSON next to the checkpoints so that evaluation,
in another process, rebuilds exactly the trained models.

Examples:
  >>> from jaxrobust.config import Field, validate_section
  >>> validate_section({"width": 4}, {"width": Field(int, 8), "depth": Field(int, 2)}, "config.net")
  {'width': 4, 'depth': 2}
"""

from jaxrobust.config import sections
from jaxrobust.config.loading import (
    CONFIG_FILENAME,
    apply_overrides,
    config_to_dict,
    import_file,
    load_config,
    load_workdir_config,
    save_config,
)
from jaxrobust.config.resolve import config_schema, field_at, resolve_config
from jaxrobust.config.schema import (
    REQUIRED,
    Field,
    Schema,
    describe,
    validate_section,
    validate_value,
)

__all__ = [
    "CONFIG_FILENAME",
    "REQUIRED",
    "Field",
    "Schema",
    "apply_overrides",
    "config_schema",
    "config_to_dict",
    "describe",
    "field_at",
    "import_file",
    "load_config",
    "load_workdir_config",
    "resolve_config",
    "save_config",
    "sections",
    "validate_section",
    "validate_value",
]
