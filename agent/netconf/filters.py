"""Filters for get, get-config and get-data: subtree (RFC 6241 section 6) and XPath
(RFC 6241 8.9), evaluated by libyang on the data trees.

A filter becomes a list of selections: XPath expressions with module-name prefixes,
each selecting whole subtrees. A subtree filter turns into one selection per selection
node, per content-match leaf and per sibling set made only of content-match nodes, the
content-match nodes becoming predicates. A namespace-less filter element matches that
name in every module (RFC 6241 6.2.1). The result is assembled from copies of the
selected subtrees with their ancestors (and list keys); a selected top-level node is
printed straight from its datastore, without a copy.
"""

from dataclasses import dataclass

from _libyang import ffi, lib
from lxml import etree

from ..datastore import xpath
from ..datastore.schema import module_name_of, schema_index
from ..datastore.tree import NULL, DataTree, key, top_of
from ..model.errors import collect
from .errors import RpcError
from .messages import BASE_NS, elements

_DUP = lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_WITH_PARENTS | lib.LYD_DUP_WITH_FLAGS


@dataclass
class Filter:
    """selections None: everything; []: nothing (an empty subtree filter)."""
    selections: list[str] | None = None


EVERYTHING = Filter(None)


def parse(element, ctx, allow_xpath: bool = True, notifications: bool = False) -> Filter:
    """The Filter of a <filter> element (None element: everything); notifications: it
    filters notifications (create-subscription), whose names it may select."""
    if element is None:
        return EVERYTHING
    kind = element.get("type") or element.get("{%s}type" % BASE_NS) or "subtree"
    if kind == "subtree":
        return Filter(subtree_selections(elements(element), ctx, notifications))
    if kind == "xpath" and allow_xpath:
        select = element.get("select") or element.get("{%s}select" % BASE_NS)
        if select is None:
            raise RpcError("missing-attribute", "an XPath filter needs a select attribute",
                           error_type="protocol", info=(("bad-attribute", "select"),
                                                        ("bad-element", "filter")))
        return Filter([xpath_selection(select, element.nsmap, ctx, notifications)])
    raise RpcError("bad-attribute", "filter type %s is not supported" % kind,
                   error_type="protocol", info=(("bad-attribute", "type"),
                                                ("bad-element", "filter")))


def xpath_selection(select: str, nsmap: dict, ctx, notifications: bool = False) -> str:
    """The libyang form of an XPath filter. An unprefixed top-level name is that of the
    one module that has it (whichever module it is); a filter that selects no node of
    the schema is an error, not an empty reply."""
    index = schema_index(ctx)

    def modules_of(name):
        return [module_name_of(s) for s in index.child(None, None, name, notifications)]
    try:
        expr = xpath.to_libyang(select, {k: v for k, v in nsmap.items() if k},
                                index.module_name)
        expr = xpath.qualify_top_level(expr, modules_of)
    except xpath.XPathSyntaxError as exc:
        raise RpcError("invalid-value", "invalid XPath filter: %s" % exc,
                       error_type="protocol") from None
    found = ffi.new("struct ly_set **")
    if lib.lys_find_xpath(ctx.cdata, NULL, expr.encode(), 0, found) != lib.LY_SUCCESS:
        problems = collect(ctx)
        raise RpcError("invalid-value", "invalid XPath filter %s: %s" % (
            select, problems[0].message if problems else "libyang cannot evaluate it"),
            error_type="protocol")
    count = found[0].count
    lib.ly_set_free(found[0], NULL)
    if not count:
        raise RpcError("invalid-value", "the XPath filter %s selects no node of any module"
                       % select, error_type="protocol")
    return expr


def _is_leafy(element) -> bool:
    return len(elements(element)) == 0


def _content(element) -> str | None:
    """The text of a content-match node, or None for a selection node."""
    text = element.text or ""
    return text if text.strip() else None


def _value(element, snode, text: str, index) -> str:
    """A content-match value as libyang compares it (identities with module names)."""
    if snode.nodetype in (lib.LYS_LEAF, lib.LYS_LEAFLIST):
        leaf = ffi.cast("struct lysc_node_leaf *", snode)
        if leaf.type.basetype == lib.LY_TYPE_IDENT:
            prefix, sep, local = text.strip().partition(":")
            namespace = element.nsmap.get(prefix if sep else None)
            module = index.module_name(namespace) if namespace else None
            if module:
                return "%s:%s" % (module, local if sep else prefix)
    return text


def subtree_selections(children, ctx, notifications: bool = False) -> list[str]:
    index = schema_index(ctx)
    out: list[str] = []
    for child in children:
        _subtree(child, None, "", index, out, notifications)
    # a selection repeated (a filter of a million <name/>) is evaluated once
    return list(dict.fromkeys(out))


def _subtree(element, parent, base: str, index, out: list, notifications=False) -> None:
    q = etree.QName(element)
    for snode in index.child(parent, q.namespace, q.localname,
                             notifications and parent is None):
        step = base + index.step(snode)
        kids = elements(element)
        if not kids:
            text = _content(element)
            if text is not None and snode.nodetype in (lib.LYS_LEAF, lib.LYS_LEAFLIST):
                out.append("%s[.=%s]" % (step, xpath.quote(_value(element, snode, text, index))))
            else:
                out.append(step)
            continue
        matches, selections, containers = [], [], []
        for kid in kids:
            if _is_leafy(kid) and _content(kid) is not None:
                matches.append(kid)
            elif _is_leafy(kid):
                selections.append(kid)
            else:
                containers.append(kid)
        predicates, match_steps, impossible = "", [], False
        for kid in matches:
            kq = etree.QName(kid)
            found = [s for s in index.child(snode, kq.namespace, kq.localname)
                     if s.nodetype in (lib.LYS_LEAF, lib.LYS_LEAFLIST)]
            if not found:
                impossible = True     # a content match on nothing never matches
                break
            alternatives = ["%s=%s" % (index.step(s)[1:],
                                       xpath.quote(_value(kid, s, _content(kid), index)))
                            for s in found]
            predicates += "[%s]" % " or ".join(alternatives)
            # the content match node is part of the output (the matching instance only,
            # for a leaf-list)
            match_steps.extend(
                index.step(s) + ("[.=%s]" % xpath.quote(_value(kid, s, _content(kid), index))
                                 if s.nodetype == lib.LYS_LEAFLIST else "") for s in found)
        if impossible:
            continue
        here = step + predicates
        if not selections and not containers:
            out.append(here)             # only content matches: the whole instance
            continue
        out.extend(here + m for m in match_steps)
        for kid in selections:
            kq = etree.QName(kid)
            out.extend(here + index.step(s) for s in index.child(snode, kq.namespace, kq.localname))
        for kid in containers:
            _subtree(kid, snode, here, index, out)


class Selected:
    """The result of a filter over some trees: top-level nodes printed in place, and a
    tree of copies (owned, freed by release())."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.borrowed: list[tuple[DataTree, object]] = []
        self.copies = DataTree(ctx)

    def print(self, with_defaults: str) -> bytes:
        parts = [tree.print(with_defaults, node=node) for tree, node in self.borrowed]
        parts.append(self.copies.print(with_defaults))
        return b"".join(parts)

    def release(self) -> None:
        self.copies.free()


def select(ctx, sources: list[tuple[DataTree, set | None]], flt: Filter) -> Selected:
    """Apply a filter to sources: (tree, the keys of its top-level nodes to consider,
    None for all of them). The sources' top-level nodes must not overlap."""
    result = Selected(ctx)
    if flt.selections is None:
        for tree, allowed in sources:
            for node in tree.top_nodes():
                if allowed is None or key(node) in allowed:
                    result.borrowed.append((tree, node))
        return result
    whole = set()
    partial = []
    for selection in flt.selections:
        for tree, allowed in sources:
            try:
                found = tree.xpath(selection)
            except Exception as exc:  # noqa: BLE001 - libyang's reason goes to the client
                result.release()
                raise RpcError("invalid-value", "invalid filter: %s" % exc,
                               error_type="protocol") from None
            for node in found:
                top = top_of(node)
                if allowed is not None and key(top) not in allowed:
                    continue
                if node == top:
                    if key(top) not in whole:
                        whole.add(key(top))
                        result.borrowed.append((tree, top))
                else:
                    partial.append(node)
    out = ffi.new("struct lyd_node **")
    for node in partial:
        if key(top_of(node)) in whole:
            continue
        if lib.lyd_dup_single(node, NULL, _DUP, out) != lib.LY_SUCCESS:
            continue
        result.copies.merge_forest(top_of(out[0]), destruct=True)
    return result


def merged_sources(ctx, trees: list[DataTree]) -> tuple[list, DataTree | None]:
    """Sources for select() from trees whose top-level nodes may overlap (running and
    the state of the same containers): the overlapping top-level nodes are copied and
    merged into one extra tree (returned, to be freed), the rest is used in place."""
    by_schema: dict[int, list] = {}
    for tree in trees:
        for node in tree.top_nodes():
            by_schema.setdefault(key(node.schema), []).append((tree, node))
    shared = {k for k, found in by_schema.items() if len({id(t) for t, _ in found}) > 1}
    if not shared:
        return [(tree, None) for tree in trees], None
    merged = DataTree(ctx)
    out = ffi.new("struct lyd_node **")
    allowed = {id(tree): set() for tree in trees}
    for k, found in by_schema.items():
        for tree, node in found:
            if k in shared:
                if lib.lyd_dup_single(node, NULL, _DUP, out) == lib.LY_SUCCESS:
                    merged.merge_forest(out[0], destruct=True)
            else:
                allowed[id(tree)].add(key(node))
    sources = [(merged, None)] + [(tree, allowed[id(tree)]) for tree in trees]
    return sources, merged
