"""Where in the configuration a planning problem is: data paths of the service graphs'
nodes, and the error that carries one.

The planner and the managers (the compute manager resolving a function) raise
PlanningError; the engine turns it into an rpc-error at that path.
"""


class PlanningError(Exception):
    """The change cannot be planned; path is the data path of the node at fault; tag the
    error-tag (operation-failed unless a value is at fault: invalid-value), info pairs
    for error-info."""

    def __init__(self, message: str, path: str | None = None, app_tag: str | None = None,
                 tag: str = "operation-failed", info: dict | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.app_tag = app_tag
        self.tag = tag
        self.info = dict(info or {})


def graph_path(graph_id: str) -> str:
    return "/composer-sffg:service-graphs/service-graph[id=%s]" % _quote(graph_id)


def _quote(value: str) -> str:
    return "'%s'" % value if "'" not in value else '"%s"' % value


def rule_path(graph_id: str, rule_id: str) -> str:
    return "%s/flow-rules/flow-rule[id=%s]" % (graph_path(graph_id), _quote(rule_id))


def function_path(graph_id: str, function_id: str) -> str:
    return "%s/functions/function[id=%s]" % (graph_path(graph_id), _quote(function_id))


def sap_path(graph_id: str, sap_id: str) -> str:
    return "%s/saps/sap[id=%s]" % (graph_path(graph_id), _quote(sap_id))


def leaf_list_path(path: str, value: str) -> str:
    """The entry of the leaf-list at path holding value (the leaf-list itself when the value
    holds both kinds of quote, which an XPath literal cannot)."""
    if "'" in value and '"' in value:
        return path
    return "%s[.=%s]" % (path, _quote(value))
