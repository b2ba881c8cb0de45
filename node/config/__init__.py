"""Character configuration: a JSON file, then environment overrides, then CLI flags.

The result is a frozen :class:`CharacterConfig` (:mod:`node.config.settings`); reading and
checking it is :mod:`node.config.loading`. Every problem raises
:class:`keys.errors.ConfigError` naming the field (dotted path) and what is wrong.
"""

from node.config.loading import (
    apply_env,
    load_config,
    parse_config,
    with_engine_override,
    with_overrides,
)
from node.config.settings import (
    DEFAULT_LISTEN,
    ENGINE_PRESETS,
    OVERRIDE_ENGINE,
    VISIT_POLICIES,
    AutonomySettings,
    BudgetSettings,
    CharacterConfig,
    EngineSettings,
    NetworkSettings,
    Persona,
    ReactionSettings,
    VisitSettings,
    slug,
)

__all__ = [
    "DEFAULT_LISTEN",
    "ENGINE_PRESETS",
    "OVERRIDE_ENGINE",
    "VISIT_POLICIES",
    "AutonomySettings",
    "BudgetSettings",
    "CharacterConfig",
    "EngineSettings",
    "NetworkSettings",
    "Persona",
    "ReactionSettings",
    "VisitSettings",
    "apply_env",
    "load_config",
    "parse_config",
    "slug",
    "with_engine_override",
    "with_overrides",
]
