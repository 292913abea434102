"""The YANG model at run time: the libyang context, structured errors, config parsing."""

from .errors import ModelError, ValidationError, YangErrorItem, collect
from .schema import COMPOSER_MODULES, create_context, project_yang_dir
from .data import parse_config

__all__ = ["COMPOSER_MODULES", "ModelError", "ValidationError", "YangErrorItem", "collect",
           "create_context", "parse_config", "project_yang_dir"]
