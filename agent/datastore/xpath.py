"""XPath 1.0 expressions between the two prefix conventions.

NETCONF carries XPath (filters, error-path, yang:key) with XML namespace prefixes bound
by xmlns declarations; libyang reads and writes XPath with module names as prefixes
and lets an unprefixed name inherit the module of its parent step. This module lexes
an expression (XPath 1.0 section 3.7) and rewrites the prefixes of its name tests.
"""

from dataclasses import dataclass


class XPathSyntaxError(ValueError):
    """An expression that cannot be lexed, or uses a prefix that is not bound."""


@dataclass
class Token:
    kind: str          # literal, number, name, operator, variable
    text: str
    start: int         # position in the expression


_OPERATORS_2 = ("//", "::", "..", "!=", "<=", ">=")
_OPERATORS_1 = "/()[].@,|+-=<>*"
# after these tokens, '*' and operator names are name tests, not operators (XPath 3.7)
_NO_OPERATOR_BEFORE = {"@", "::", "(", "[", ",", "/", "//", "|", "+", "-", "=", "!=", "<",
                       "<=", ">", ">=", "and", "or", "mod", "div", "*op"}
_OPERATOR_NAMES = ("and", "or", "mod", "div")
_NODE_TYPES = ("comment", "text", "processing-instruction", "node")
_DIGITS = "0123456789"


def _name_start(ch: str) -> bool:
    return ch.isalpha() or ch == "_" or ord(ch) > 0x7f


def _name_char(ch: str) -> bool:
    return ch.isalnum() or ch in "._-" or ord(ch) > 0x7f


def _ncname(text: str, i: int) -> int:
    j = i
    while j < len(text) and _name_char(text[j]):
        j += 1
    return j


def tokens(expr: str) -> list[Token]:
    """The tokens of an XPath expression; names keep their 'prefix:' part."""
    out: list[Token] = []
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "'\"":
            end = expr.find(ch, i + 1)
            if end < 0:
                raise XPathSyntaxError("unterminated string literal in %r" % expr)
            out.append(Token("literal", expr[i:end + 1], i))
            i = end + 1
            continue
        # XPath numbers are ASCII digits (str.isdigit() would take '²' and '١' too)
        if ch in _DIGITS or (ch == "." and i + 1 < n and expr[i + 1] in _DIGITS):
            j = i
            while j < n and (expr[j] in _DIGITS or expr[j] == "."):
                j += 1
            out.append(Token("number", expr[i:j], i))
            i = j
            continue
        if ch == "$":
            j = _ncname(expr, i + 1)
            if j < n and expr[j] == ":" and j + 1 < n and _name_start(expr[j + 1]):
                j = _ncname(expr, j + 1)
            out.append(Token("variable", expr[i:j], i))
            i = j
            continue
        two = expr[i:i + 2]
        if two in _OPERATORS_2:
            out.append(Token("operator", two, i))
            i += 2
            continue
        if _name_start(ch):
            j = _ncname(expr, i)
            # prefix:name or prefix:* (but not an axis 'name::')
            if j < n and expr[j] == ":" and expr[j + 1:j + 2] != ":":
                if j + 1 < n and expr[j + 1] == "*":
                    j += 2
                elif j + 1 < n and _name_start(expr[j + 1]):
                    j = _ncname(expr, j + 1)
                else:
                    raise XPathSyntaxError("bad name at %r" % expr[i:])
            out.append(Token("name", expr[i:j], i))
            i = j
            continue
        if ch in _OPERATORS_1:
            out.append(Token("operator", ch, i))
            i += 1
            continue
        if ch == "!":
            raise XPathSyntaxError("'!' must be followed by '=' in %r" % expr)
        raise XPathSyntaxError("unexpected character %r in %r" % (ch, expr))
    return out


def _roles(toks: list[Token]) -> list[str]:
    """For each token: 'nametest' when it is a name test (the tokens whose prefix
    matters), else its kind."""
    roles = []
    for index, tok in enumerate(toks):
        prev = toks[index - 1].text if index else None
        after = toks[index + 1].text if index + 1 < len(toks) else None
        operator_position = prev is not None and prev not in _NO_OPERATOR_BEFORE
        if tok.kind == "name":
            if operator_position and tok.text in _OPERATOR_NAMES:
                roles.append("operator")
            elif after == "(":
                roles.append("function" if tok.text not in _NODE_TYPES else "nodetype")
            elif after == "::":
                roles.append("axis")
            else:
                roles.append("nametest")
        elif tok.kind == "operator" and tok.text == "*":
            roles.append("operator" if operator_position else "nametest")
        else:
            roles.append(tok.kind)
    return roles


def _splice(expr: str, toks: list[Token], replaced: dict) -> str:
    """The expression with some tokens (index -> new text) replaced, the rest of the
    text (spacing included) untouched."""
    out, pos = [], 0
    for index in sorted(replaced):
        tok = toks[index]
        out.append(expr[pos:tok.start])
        out.append(replaced[index])
        pos = tok.start + len(tok.text)
    out.append(expr[pos:])
    return "".join(out)


def _rewrite(expr: str, name_test, literal=None) -> str:
    toks = tokens(expr)
    replaced = {}
    for index, (tok, role) in enumerate(zip(toks, _roles(toks))):
        if role == "nametest" and tok.text != "*":
            new = name_test(tok.text)
        elif role == "literal" and literal is not None:
            new = literal(tok.text)
        else:
            continue
        if new != tok.text:
            replaced[index] = new
    return _splice(expr, toks, replaced)


def to_libyang(expr: str, nsmap: dict, module_of_namespace) -> str:
    """An XPath with XML prefixes (nsmap: prefix -> namespace) rewritten with module
    names; module_of_namespace(ns) gives the module name or None. String literals of
    the form 'prefix:name' with a bound prefix (identity values) are rewritten too."""

    def module_for(prefix: str) -> str:
        namespace = nsmap.get(prefix)
        if namespace is None:
            raise XPathSyntaxError("prefix %r is not bound to a namespace" % prefix)
        module = module_of_namespace(namespace)
        if module is None:
            raise XPathSyntaxError("no YANG module has the namespace %s" % namespace)
        return module

    def name_test(text):
        prefix, sep, local = text.partition(":")
        if not sep:
            return text
        return "%s:%s" % (module_for(prefix), local)

    def literal(text):
        body = text[1:-1]
        prefix, sep, local = body.partition(":")
        if sep and prefix in nsmap and local and _name_start(local[0]) and \
                all(_name_char(c) for c in prefix + local) and \
                module_of_namespace(nsmap[prefix]) is not None:
            return text[0] + "%s:%s" % (module_of_namespace(nsmap[prefix]), local) + text[0]
        return text

    return _rewrite(expr, name_test, literal)


def _starts_path(toks: list[Token], index: int) -> bool:
    """Whether the '/' at index starts an absolute location path (rather than
    separating two steps of one)."""
    if index == 0:
        return True
    prev = toks[index - 1]
    return prev.kind == "operator" and prev.text in _NO_OPERATOR_BEFORE - {"@", "::"} \
        or prev.kind == "name" and prev.text in _OPERATOR_NAMES


def qualify_top_level(expr: str, modules_of) -> str:
    """expr (module-name prefixes) with each unprefixed name test of a top-level step
    ('/name', the first step of an absolute path) prefixed with the one module that
    has a top-level node of that name: libyang would resolve it against the module of
    whatever tree it searches, so that only some of them matched. modules_of(name)
    gives the names of the modules with such a node; none or several raise
    XPathSyntaxError (the caller's rpc-error)."""
    toks = tokens(expr)
    roles = _roles(toks)
    replaced = {}
    for index, tok in enumerate(toks):
        if tok.kind == "operator" and tok.text == "/" and _starts_path(toks, index) and \
                index + 1 < len(toks) and roles[index + 1] == "nametest":
            name = toks[index + 1].text
            if ":" in name or name == "*":
                continue
            modules = sorted(set(modules_of(name)))
            if not modules:
                raise XPathSyntaxError("no module has a top-level node %s" % name)
            if len(modules) > 1:
                raise XPathSyntaxError("top-level node %s is in modules %s: give its prefix"
                                       % (name, ", ".join(modules)))
            replaced[index + 1] = "%s:%s" % (modules[0], name)
    return _splice(expr, toks, replaced)


def to_xml(path: str, prefix_of_module) -> tuple[str, dict]:
    """A libyang data path rewritten with XML prefixes on every name test, and the
    prefix -> namespace declarations it needs. prefix_of_module(module) gives
    (prefix, namespace) for a module name, or None."""
    nsmap: dict = {}
    by_module: dict = {}

    def xml_prefix(module: str) -> str:
        if module in by_module:
            return by_module[module]
        found = prefix_of_module(module)
        if found is None:
            raise XPathSyntaxError("unknown module %r" % module)
        prefix, namespace = found
        candidate, n = prefix, 1
        while candidate in nsmap and nsmap[candidate] != namespace:
            n += 1
            candidate = "%s%d" % (prefix, n)
        nsmap[candidate] = namespace
        by_module[module] = candidate
        return candidate

    toks = tokens(path)
    replaced = {}
    current = None          # the module of the last step outside predicates
    stack = []
    for index, (tok, role) in enumerate(zip(toks, _roles(toks))):
        if tok.kind == "operator" and tok.text == "[":
            stack.append(current)
        elif tok.kind == "operator" and tok.text == "]":
            current = stack.pop() if stack else current
        elif role == "nametest" and tok.text != "*":
            module, sep, local = tok.text.partition(":")
            if sep:
                if not stack:
                    current = module
            else:
                module, local = current, tok.text
            if module is None:
                raise XPathSyntaxError("unprefixed top-level name in %r" % path)
            replaced[index] = "%s:%s" % (xml_prefix(module), local)
    return _splice(path, toks, replaced), nsmap


def strip_prefixes(predicates: str) -> str:
    """Key predicates ('[p:k1='a'][p:k2='b']', as in the yang:key attribute) with the
    prefixes dropped: key leaves always belong to their list's module."""
    def name_test(text):
        return text.partition(":")[2] or text
    return _rewrite(predicates, name_test)


def quote(value: str) -> str:
    """An XPath string literal for value."""
    if "'" not in value:
        return "'%s'" % value
    if '"' not in value:
        return '"%s"' % value
    parts = value.split("'")
    return "concat(%s)" % ", \"'\", ".join("'%s'" % p for p in parts)
