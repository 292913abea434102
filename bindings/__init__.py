"""pyangbind classes generated from yang/ by `make bindings`; never edited by hand.

They are the typed Python view of the model: build a graph or a domain description
with them and serialise it with pyangbind.lib.serialise (IETF JSON).
"""

from .composer_domain import composer_domain
from .composer_sffg import composer_sffg
from .composer_templates import composer_templates

__all__ = ["composer_domain", "composer_sffg", "composer_templates"]
