"""A fake Stripe API on loopback for the tests, speaking Stripe's wire format: form-encoded
requests with bracketed keys, Bearer secret keys, Idempotency-Key headers, JSON objects and
Stripe-shaped errors. It serves checkout sessions, billing portal sessions, promotion code
lookup and Billing Meter events (deduplicated by identifier, like Stripe). Control:
POST /_control with {"down": true|false} makes /v1 answer 503; GET /_requests lists every
request received. Usage: fake_stripe.py PORT; prints "ready"; stops when stdin closes or after
600 s."""
import hashlib
import hmac
import json
import random
import re
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

# The webhook endpoint, and the API version it was created at: payloads take its shape.
WEBHOOK = {"url": None, "secret": None, "api_version": "2024-06-20"}
# From this version on, a subscription's period is on its items and an invoice names its
# subscription under `parent.subscription_details`.
BASIL = "2025-03-31"
OBJECTS = {"customers": {}, "subscriptions": {}, "invoices": {}, "events": []}
# The parameters Checkout Sessions take that Driftlock may send (Stripe refuses unknown ones).
CHECKOUT_PARAMS = re.compile(r"^(mode|client_reference_id|success_url|cancel_url|customer|customer_email|"
                             r"allow_promotion_codes|line_items\[\d+\]\[(price|quantity)\]|metadata\[\w+\]|"
                             r"subscription_data\[(metadata\]\[\w+|billing_cycle_anchor|proration_behavior)\]|"
                             r"discounts\[0\]\[(promotion_code|coupon)\])$")
# The parameters of every other request Driftlock sends (unknown ones are refused, as Stripe does).
PARAMS = {
    ("POST", "/v1/billing_portal/sessions"): re.compile(r"^(customer|return_url)$"),
    ("POST", "/v1/coupons"): re.compile(r"^(id|name|percent_off|duration|duration_in_months|applies_to\[products\]\[\d+\])$"),
    ("POST", "/v1/promotion_codes"): re.compile(r"^(coupon|code|promotion\[(type|coupon)\])$"),
    ("GET", "/v1/promotion_codes"): re.compile(r"^(code|active|limit|starting_after)$"),
    ("GET", "/v1/billing/meters"): re.compile(r"^(limit|starting_after|status)$"),
    ("POST", "/v1/billing/meter_events"): re.compile(r"^(event_name|identifier|timestamp|payload\[(stripe_customer_id|value)\])$"),
    ("GET", "/v1/billing/meters/mtr_test_1/event_summaries"): re.compile(r"^(customer|start_time|end_time|value_grouping_window)$"),
}
# The first API version whose promotion codes name the coupon as promotion[coupon].
PROMOTION_PARAM_SINCE = "2025-09-30"
# Stripe recognises a meter event identifier for 24 hours; after that it counts again.
IDENTIFIER_MEMORY = 24 * 3600
# Seconds before a meter event shows in the meter's event summaries (Stripe processes meter
# events asynchronously).
SUMMARY_LAG = 120
STATE = {"down": False, "lose_answers": 0, "lost": 0, "requests": [], "meter_events": {}, "duplicates": 0, "n": 0, "refused": 0, "coupons": {}, "promotion_codes": {}}
LOCK = threading.Lock()
SECRET = "sk_test_driftlock"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def drop(self):
        """The request was taken in and no answer comes back: the connection just closes."""
        self.close_connection = True
        self.connection.shutdown(2)

    def error(self, status, code, message, kind="invalid_request_error"):
        self.reply(status, {"error": {"type": kind, "code": code, "message": message}})

    def handle_any(self, method):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        if url.path == "/_control":
            cfg = json.loads(raw or "{}")
            with LOCK:
                STATE["down"] = bool(cfg.get("down", STATE["down"]))
                # The next N meter events are recorded and their answers lost (the connection
                # drops before Stripe's answer arrives).
                STATE["lose_answers"] = int(cfg.get("lose_answers", STATE["lose_answers"]))
            return self.reply(200, {"down": STATE["down"], "lose_answers": STATE["lose_answers"]})
        if url.path == "/_webhook":
            cfg = json.loads(raw or "{}")
            WEBHOOK["url"], WEBHOOK["secret"] = cfg["url"], cfg["secret"]
            WEBHOOK["api_version"] = cfg.get("api_version", WEBHOOK["api_version"])
            return self.reply(200, {"ok": True})
        if url.path == "/_complete_checkout":
            return self.reply(200, complete_checkout(json.loads(raw or "{}")))
        if url.path == "/_fail_invoice":
            return self.reply(200, invoice_event(json.loads(raw or "{}"), "invoice.payment_failed", "open"))
        if url.path == "/_pay_invoice":
            return self.reply(200, invoice_event(json.loads(raw or "{}"), "invoice.paid", "paid"))
        if url.path == "/_forget":
            customer = json.loads(raw or "{}").get("customer")
            with LOCK:
                STATE["meter_events"] = {k: v for k, v in STATE["meter_events"].items() if v["customer"] != customer}
            return self.reply(200, {"forgot": customer})
        if url.path == "/_requests":
            with LOCK:
                return self.reply(200, {"requests": STATE["requests"], "meter_events": STATE["meter_events"], "duplicates": STATE["duplicates"], "refused": STATE["refused"], "coupons": STATE["coupons"], "promotion_codes": STATE["promotion_codes"], "lost": STATE["lost"]})
        form = dict(parse_qsl(raw, keep_blank_values=True))
        query = dict(parse_qsl(url.query))
        with LOCK:
            if STATE["down"]:
                STATE["refused"] += 1
                return self.error(503, None, "Stripe is down (fake)", "api_error")
            STATE["requests"].append({"method": method, "path": url.path, "form": form, "query": query,
                                      "idempotency_key": self.headers.get("Idempotency-Key"),
                                      "stripe_version": self.headers.get("Stripe-Version"),
                                      "content_type": self.headers.get("Content-Type")})
            STATE["n"] += 1
            n = STATE["n"]
        if self.headers.get("Authorization") != "Bearer " + SECRET:
            return self.error(401, None, "Invalid API Key provided", "authentication_error")
        allowed = PARAMS.get((method, url.path))
        for key in (form if method == "POST" else query) if allowed else ():
            if not allowed.match(key):
                return self.error(400, "parameter_unknown", "Received unknown parameter: %s" % key)
        if method == "GET" and url.path.startswith("/v1/prices/"):
            price = url.path[len("/v1/prices/"):]
            if not price.startswith("price_"):
                return self.error(404, "resource_missing", "No such price: '%s'" % price)
            return self.reply(200, {"id": price, "object": "price", "product": "prod_" + price[len("price_"):],
                                    "active": True})
        if method == "POST" and url.path == "/v1/checkout/sessions":
            if form.get("mode") != "subscription" or "line_items[0][price]" not in form:
                return self.error(400, "parameter_missing", "mode and line_items are required")
            for key in form:
                if not CHECKOUT_PARAMS.match(key):
                    return self.error(400, "parameter_unknown", "Received unknown parameter: %s" % key)
            anchor = form.get("subscription_data[billing_cycle_anchor]")
            if anchor is not None and (not anchor.isdigit() or int(anchor) <= time.time()):
                return self.error(400, "parameter_invalid", "subscription_data[billing_cycle_anchor] must be a timestamp in the future")
            return self.reply(200, {"id": "cs_test_%d" % n, "object": "checkout.session",
                                    "url": "https://checkout.stripe.test/c/pay/cs_test_%d" % n,
                                    "client_reference_id": form.get("client_reference_id"), "mode": "subscription"})
        if method == "POST" and url.path == "/v1/billing_portal/sessions":
            if not form.get("customer"):
                return self.error(400, "parameter_missing", "customer is required")
            return self.reply(200, {"id": "bps_%d" % n, "object": "billing_portal.session", "customer": form["customer"],
                                    "url": "https://billing.stripe.test/p/session/%d" % n})
        if method == "GET" and url.path == "/v1/events":
            with LOCK:
                return self.reply(200, {"object": "list", "has_more": False, "data": list(reversed(OBJECTS["events"]))})
        for kind in ("customers", "subscriptions", "invoices"):
            prefix = "/v1/%s/" % kind
            if method == "GET" and url.path.startswith(prefix):
                obj = OBJECTS[kind].get(url.path[len(prefix):])
                if obj is None:
                    return self.error(404, "resource_missing", "No such %s" % kind[:-1])
                return self.reply(200, obj)
        if method == "POST" and url.path == "/v1/coupons":
            with LOCK:
                if form.get("id") in STATE["coupons"]:
                    return self.error(400, "resource_already_exists", "Coupon already exists.")
                products = [v for k, v in sorted(form.items()) if k.startswith("applies_to[products]")]
                coupon = {"id": form.get("id"), "object": "coupon", "percent_off": float(form.get("percent_off", 0)),
                          "duration": form.get("duration"), "duration_in_months": int(form.get("duration_in_months", 0)),
                          "name": form.get("name"), "applies_to": {"products": products} if products else None}
                STATE["coupons"][coupon["id"]] = coupon
            return self.reply(200, coupon)
        if method == "POST" and url.path == "/v1/promotion_codes":
            with LOCK:
                code = form.get("code")
                if code in STATE["promotion_codes"]:
                    return self.error(400, "resource_already_exists", "A promotion code with this code already exists.")
                new_form = (self.headers.get("Stripe-Version") or "") >= PROMOTION_PARAM_SINCE
                if new_form and "coupon" in form:
                    return self.error(400, "parameter_unknown", "Received unknown parameter: coupon")
                if not new_form and "promotion[coupon]" in form:
                    return self.error(400, "parameter_unknown", "Received unknown parameter: promotion")
                coupon_id = form.get("promotion[coupon]" if new_form else "coupon")
                if coupon_id not in STATE["coupons"]:
                    return self.error(400, "resource_missing", "No such coupon")
                promo = {"id": "promo_%s" % code.lower(), "object": "promotion_code", "code": code, "active": True,
                         "coupon": STATE["coupons"][coupon_id]}
                STATE["promotion_codes"][code] = promo
            return self.reply(200, promo)
        if method == "GET" and url.path == "/v1/promotion_codes":
            with LOCK:
                data = [p for p in STATE["promotion_codes"].values() if p["code"] == query.get("code")
                        and ("active" not in query or str(p["active"]).lower() == query["active"])]
            return self.reply(200, {"object": "list", "data": data, "has_more": False})
        if method == "GET" and url.path == "/v1/billing/meters":
            # As Stripe: pages of `limit` (default 10) after `starting_after`; the account
            # has other meters, and Driftlock's is not on the first page.
            meters = [{"id": "mtr_other_%03d" % i, "object": "billing.meter", "event_name": "other_%d" % i,
                       "default_aggregation": {"formula": "sum"}, "status": "active"} for i in range(120)]
            meters.append({"id": "mtr_test_1", "object": "billing.meter", "event_name": "driftlock_detections",
                           "default_aggregation": {"formula": "sum"}, "status": "active"})
            limit = min(int(query.get("limit", "10")), 100)
            after = query.get("starting_after")
            first = next((i + 1 for i, m in enumerate(meters) if m["id"] == after), 0) if after else 0
            page = meters[first:first + limit]
            return self.reply(200, {"object": "list", "has_more": first + limit < len(meters), "data": page})
        if method == "GET" and url.path == "/v1/billing/meters/mtr_test_1/event_summaries":
            customer = query.get("customer")
            if not customer or "start_time" not in query or "end_time" not in query:
                return self.error(400, "parameter_missing", "customer, start_time and end_time are required")
            try:
                start, end = int(query["start_time"]), int(query["end_time"])
            except ValueError:
                return self.error(400, "parameter_invalid_integer", "start_time and end_time must be integers")
            # As Stripe: the window is on minute boundaries, and a summary shows an event only
            # once it is processed (SUMMARY_LAG seconds after it arrived here).
            if start % 60 or end % 60:
                return self.error(400, "parameter_invalid", "start_time and end_time must be aligned with minute boundaries")
            if start >= end:
                return self.error(400, "parameter_invalid", "start_time must be before end_time")
            now = time.time()
            with LOCK:
                total = sum(e["value"] for e in STATE["meter_events"].values()
                            if e["customer"] == customer and start <= int(e["timestamp"] or 0) < end
                            and e["received_at"] <= now - SUMMARY_LAG)
            return self.reply(200, {"object": "list", "has_more": False, "data": [
                {"id": "mtrusum_1", "object": "billing.meter_event_summary", "aggregated_value": float(total),
                 "meter": "mtr_test_1", "start_time": int(query["start_time"]), "end_time": int(query["end_time"])}]})
        if method == "POST" and url.path == "/v1/billing/meter_events":
            ident = form.get("identifier")
            ts = form.get("timestamp")
            if ts is not None:
                now = time.time()
                if not ts.isdigit() or int(ts) < now - 35 * 86400 or int(ts) > now + 300:
                    return self.error(400, "timestamp_outside_window",
                                      "timestamp must be within the past 35 days and at most 5 minutes in the future")
            with LOCK:
                known = STATE["meter_events"].get(ident)
                lose = STATE["lose_answers"] > 0
                if lose:
                    STATE["lose_answers"] -= 1
                    STATE["lost"] += 1
                if known is not None and known["received_at"] > time.time() - IDENTIFIER_MEMORY:
                    STATE["duplicates"] += 1
                    if lose:
                        return self.drop()
                    return self.error(400, "resource_already_exists", "An event already exists with identifier " + ident)
                # An identifier Stripe has forgotten counts as a new event: kept beside the first.
                key = ident if known is None else "%s#%d" % (ident, len(STATE["meter_events"]))
                STATE["meter_events"][key] = {"event_name": form.get("event_name"),
                                              "customer": form.get("payload[stripe_customer_id]"),
                                              "value": int(form.get("payload[value]", "0")),
                                              "timestamp": form.get("timestamp"),
                                              "received_at": time.time()}
            if lose:
                return self.drop()
            return self.reply(200, {"object": "billing.meter_event", "identifier": ident, "event_name": form.get("event_name")})
        return self.error(404, "resource_missing", "Unrecognized request URL (%s: %s)" % (method, url.path))

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")


def sign(payload):
    t = int(time.time())
    sig = hmac.new(WEBHOOK["secret"].encode(), ("%d.%s" % (t, payload)).encode(), hashlib.sha256).hexdigest()
    return "t=%d,v1=%s" % (t, sig)


def send(events, shuffle=True, duplicate=True):
    """Delivers events to the webhook URL like Stripe: signed, possibly twice, in any order."""
    batch = list(events)
    if duplicate and batch:
        batch.append(batch[0])
    if shuffle:
        random.Random(7).shuffle(batch)
    answers = []
    for event in batch:
        payload = json.dumps(event)
        req = urllib.request.Request(WEBHOOK["url"], data=payload.encode(), method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8",
                                              "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                                              "Accept": "*/*; q=0.5, application/xml",
                                              "Stripe-Signature": sign(payload)})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                answers.append(json.loads(resp.read()))
        except Exception as e:  # a failed delivery is reported, like Stripe's dashboard
            answers.append({"error": str(e)})
    return answers


def event(kind, obj, created):
    with LOCK:
        e = {"id": "evt_%d_%s" % (len(OBJECTS["events"]) + 1, kind.replace(".", "_")), "object": "event",
             "api_version": WEBHOOK["api_version"], "type": kind, "created": created, "data": {"object": obj}}
        OBJECTS["events"].append(e)
    return e


def complete_checkout(req):
    """The customer pays a checkout: customer, subscription, then the events, shuffled and
    with one duplicate, the older subscription state arriving after the newer one."""
    now = int(time.time())
    with LOCK:
        n = len(OBJECTS["customers"]) + 1
        customer = {"id": "cus_fake_%d" % n, "object": "customer", "email": req.get("email")}
        OBJECTS["customers"][customer["id"]] = customer
        # Checkout copies subscription_data[metadata] onto the subscription, as Stripe does.
        period = {"current_period_start": now, "current_period_end": now + 30 * 86400}
        basil = WEBHOOK["api_version"] >= BASIL
        items = [dict({"object": "subscription_item", "price": {"id": p}}, **(period if basil else {}))
                 for p in req.get("prices", [])]
        sub = dict({"id": "sub_fake_%d" % n, "object": "subscription", "customer": customer["id"], "status": "active",
                    "metadata": {"organization_id": req["org"]},
                    "items": {"object": "list", "data": items}}, **({} if basil else period))
        OBJECTS["subscriptions"][sub["id"]] = sub
    session = {"id": req.get("session", "cs_test_1"), "object": "checkout.session", "mode": "subscription",
               "client_reference_id": req["org"], "customer": customer["id"], "subscription": sub["id"],
               "metadata": {"plan": req.get("plan", "standard")}}
    incomplete = dict(sub, status="incomplete")
    events = [event("checkout.session.completed", session, now - 3),
              event("customer.subscription.created", incomplete, now - 2),
              event("customer.subscription.updated", sub, now - 1)]
    # Newest first, the older subscription state after it, and the newest delivered twice.
    order = [events[2], events[0], events[1]]
    return {"customer": customer["id"], "subscription": sub["id"], "answers": send(order, shuffle=False)}


def invoice_event(req, kind, status):
    now = int(time.time())
    with LOCK:
        inv = OBJECTS["invoices"].get(req.get("invoice", "in_fake_1")) or {
            "id": req.get("invoice", "in_fake_1"), "object": "invoice", "customer": req["customer"],
            "number": "FAKE-0001", "currency": "usd", "amount_due": req.get("amount", 4900), "amount_paid": 0,
            "attempt_count": 0, "created": now, "hosted_invoice_url": "https://invoice.stripe.test/i/1"}
        sub = next((x for x in OBJECTS["subscriptions"].values() if x["customer"] == inv["customer"]), None)
        if sub is not None and WEBHOOK["api_version"] >= BASIL:
            inv.setdefault("parent", {"type": "subscription_details", "subscription_details": {
                "subscription": sub["id"], "metadata": sub["metadata"]}})
        elif sub is not None:
            inv.setdefault("subscription", sub["id"])
            inv.setdefault("subscription_details", {"metadata": sub["metadata"]})
        inv = dict(inv, status=status, attempt_count=inv["attempt_count"] + 1,
                   amount_paid=inv["amount_due"] if status == "paid" else 0)
        OBJECTS["invoices"][inv["id"]] = inv
    return {"invoice": inv["id"], "answers": send([event(kind, inv, now + (1 if status == "paid" else 0))], shuffle=False)}


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait(600)
    server.shutdown()


if __name__ == "__main__":
    main()
