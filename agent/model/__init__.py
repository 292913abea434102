"""The model at run time: the libyang context, structured errors, config parsing, and the
service graph as values (graph.py), plans (plan.py), what is deployed (deployed.py) and
where a planning problem is (paths.py). The engine, the managers and the datastores use
it; it imports none of them."""

from .errors import ModelError, ValidationError, YangErrorItem, collect
from .schema import COMPOSER_MODULES, create_context, project_yang_dir
from .data import parse_config

__all__ = ["COMPOSER_MODULES", "ModelError", "ValidationError", "YangErrorItem", "collect",
           "create_context", "parse_config", "project_yang_dir"]
