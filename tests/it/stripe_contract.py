"""Checks requests Driftlock sends to Stripe against the parameter definitions of the official
`stripe` Python library (its TypedDict `*Params` classes), at the library version that pins
Driftlock's API version. Reads a JSON list of {"method", "path", "params": [[key, value]]}
on stdin (argument: the API version Driftlock pins, which must be the library's); prints one line per problem and exits 1 if there is any. A key is checked through
its brackets: `a[b][0][c]` must be a field `a` whose type has a field `b`, a list, and in
its items a field `c`; values are checked against literals, integers and booleans; every
field the definition requires must be present."""
import json
import re
import sys
import typing

import stripe
import typing_extensions

# (method, path pattern) -> the library class whose params the request takes.
OPERATIONS = [
    ("POST", r"/v1/checkout/sessions", lambda: stripe.checkout.Session.CreateParams),
    ("POST", r"/v1/billing_portal/sessions", lambda: stripe.billing_portal.Session.CreateParams),
    ("GET", r"/v1/prices/[^/]+", lambda: stripe.Price.RetrieveParams),
    ("POST", r"/v1/coupons", lambda: stripe.Coupon.CreateParams),
    ("POST", r"/v1/promotion_codes", lambda: stripe.PromotionCode.CreateParams),
    ("GET", r"/v1/promotion_codes", lambda: stripe.PromotionCode.ListParams),
    ("GET", r"/v1/billing/meters", lambda: stripe.billing.Meter.ListParams),
    ("GET", r"/v1/billing/meters/[^/]+/event_summaries", lambda: stripe.billing.Meter.ListEventSummariesParams),
    ("POST", r"/v1/billing/meter_events", lambda: stripe.billing.MeterEvent.CreateParams),
]
# Options of the library's own, not request parameters.
REQUEST_OPTIONS = set(typing.get_type_hints(stripe.RequestOptions))


def hints(cls):
    ns = dict(vars(typing))
    ns.update(vars(typing_extensions))
    ns.update(vars(sys.modules[cls.__module__]))
    owner = cls.__qualname__.split(".")[0]
    local = {owner: getattr(sys.modules[cls.__module__], owner)}
    return typing.get_type_hints(cls, globalns=ns, localns=local, include_extras=True)


def strip(t):
    """(type without NotRequired/Required/Optional wrappers, required?)."""
    required = True
    while True:
        origin = typing.get_origin(t)
        if origin in (typing.NotRequired, typing_extensions.NotRequired):
            required, t = False, typing.get_args(t)[0]
        elif origin in (typing.Required, typing_extensions.Required):
            t = typing.get_args(t)[0]
        elif origin is typing.Union:
            args = [a for a in typing.get_args(t) if a is not type(None)]
            if len(args) != 1:
                return args, required
            t = args[0]
        else:
            return t, required


def is_typeddict(t):
    return isinstance(t, type) and hasattr(t, "__annotations__") and hasattr(t, "__total__")


def check_value(t, value, where):
    if isinstance(t, list):  # a union: any member will do
        errors = [check_value(a, value, where) for a in t]
        return None if any(e is None for e in errors) else errors[0]
    origin = typing.get_origin(t)
    if origin is typing.Literal:
        allowed = [str(a) for a in typing.get_args(t)]
        return None if value in allowed else "%s: %r is not one of %s" % (where, value, allowed)
    if t is bool:
        return None if value in ("true", "false") else "%s: %r is not a boolean" % (where, value)
    if t is int:
        return None if re.fullmatch(r"-?\d+", value) else "%s: %r is not an integer" % (where, value)
    if t is float:
        return None if re.fullmatch(r"-?\d+(\.\d+)?", value) else "%s: %r is not a number" % (where, value)
    if t is str:
        return None
    return "%s: a scalar value where the definition wants %s" % (where, t)


def walk(t, segments, value, where):
    """Follows `segments` of a bracketed key through type `t`."""
    t, _ = strip(t)
    if not segments:
        return check_value(t, value, where)
    head, rest = segments[0], segments[1:]
    if isinstance(t, list):
        errors = [walk(a, segments, value, where) for a in t]
        return None if any(e is None for e in errors) else errors[0]
    origin = typing.get_origin(t)
    if origin in (list, typing.List):
        if not head.isdigit():
            return "%s[%s]: a list takes an index here" % (where, head)
        return walk(typing.get_args(t)[0], rest, value, "%s[%s]" % (where, head))
    if origin in (dict, typing.Dict):
        return walk(typing.get_args(t)[1], rest, value, "%s[%s]" % (where, head))
    if is_typeddict(t):
        fields = hints(t)
        if head not in fields or head in REQUEST_OPTIONS:
            return "%s[%s]: unknown parameter (known: %s)" % (where, head, ", ".join(sorted(set(fields) - REQUEST_OPTIONS)))
        return walk(fields[head], rest, value, "%s[%s]" % (where, head))
    return "%s[%s]: %s takes no nested keys" % (where, head, t)


def missing_required(t, keys, prefix):
    """Required fields of TypedDict `t` (and of the nested ones used) absent from `keys`."""
    out = []
    for name, ft in hints(t).items():
        if name in REQUEST_OPTIONS:
            continue
        inner, required = strip(ft)
        path = prefix + [name]
        used = [k for k in keys if k[:len(path)] == path]
        if required and not used:
            out.append("".join([path[0]] + ["[%s]" % p for p in path[1:]]))
        if used and is_typeddict(inner):
            out += missing_required(inner, used, path)
    return out


def check(request):
    method, path, params = request["method"], request["path"], request["params"]
    match = [op for op in OPERATIONS if op[0] == method and re.fullmatch(op[1], path)]
    if not match:
        return ["%s %s: not an operation this check knows; add it to OPERATIONS" % (method, path)]
    cls = match[0][2]()
    problems = []
    keys = []
    for key, value in params:
        segments = re.findall(r"^[^\[]+|(?<=\[)[^\]]*(?=\])", key)
        keys.append(segments)
        problem = walk(cls, segments, value, "")
        if problem:
            problems.append("%s %s: %s=%r: %s" % (method, path, key, value, problem.split(": ", 1)[1]))
    problems += ["%s %s: required parameter %s is missing" % (method, path, m) for m in missing_required(cls, keys, [])]
    return problems


def main():
    requests = json.load(sys.stdin)
    problems = [p for r in requests for p in check(r)]
    if len(sys.argv) > 1 and sys.argv[1] != stripe.api_version:
        problems.append("the library pins API %s, Driftlock %s" % (stripe.api_version, sys.argv[1]))
    for p in problems:
        print(p)
    print("checked %d requests against stripe %s (API %s): %d problems"
          % (len(requests), stripe.VERSION, stripe.api_version, len(problems)), file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
