"""A fake Stripe API on loopback for the tests, speaking Stripe's wire format: form-encoded
requests with bracketed keys, Bearer secret keys, Idempotency-Key headers, JSON objects and
Stripe-shaped errors. It serves checkout sessions, billing portal sessions, promotion code
lookup and Billing Meter events (deduplicated by identifier, like Stripe). Control:
POST /_control with {"down": true|false} makes /v1 answer 503; GET /_requests lists every
request received. Usage: fake_stripe.py PORT; prints "ready"; stops when stdin closes or after
600 s."""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

STATE = {"down": False, "requests": [], "meter_events": {}, "duplicates": 0, "n": 0, "refused": 0, "coupons": {}, "promotion_codes": {}}
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

    def error(self, status, code, message, kind="invalid_request_error"):
        self.reply(status, {"error": {"type": kind, "code": code, "message": message}})

    def handle_any(self, method):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        if url.path == "/_control":
            with LOCK:
                STATE["down"] = bool(json.loads(raw or "{}").get("down"))
            return self.reply(200, {"down": STATE["down"]})
        if url.path == "/_forget":
            customer = json.loads(raw or "{}").get("customer")
            with LOCK:
                STATE["meter_events"] = {k: v for k, v in STATE["meter_events"].items() if v["customer"] != customer}
            return self.reply(200, {"forgot": customer})
        if url.path == "/_requests":
            with LOCK:
                return self.reply(200, {"requests": STATE["requests"], "meter_events": STATE["meter_events"], "duplicates": STATE["duplicates"], "refused": STATE["refused"], "coupons": STATE["coupons"], "promotion_codes": STATE["promotion_codes"]})
        form = dict(parse_qsl(raw, keep_blank_values=True))
        query = dict(parse_qsl(url.query))
        with LOCK:
            if STATE["down"]:
                STATE["refused"] += 1
                return self.error(503, None, "Stripe is down (fake)", "api_error")
            STATE["requests"].append({"method": method, "path": url.path, "form": form, "query": query,
                                      "idempotency_key": self.headers.get("Idempotency-Key"),
                                      "content_type": self.headers.get("Content-Type")})
            STATE["n"] += 1
            n = STATE["n"]
        if self.headers.get("Authorization") != "Bearer " + SECRET:
            return self.error(401, None, "Invalid API Key provided", "authentication_error")
        if method == "POST" and url.path == "/v1/checkout/sessions":
            if form.get("mode") != "subscription" or "line_items[0][price]" not in form:
                return self.error(400, "parameter_missing", "mode and line_items are required")
            return self.reply(200, {"id": "cs_test_%d" % n, "object": "checkout.session",
                                    "url": "https://checkout.stripe.test/c/pay/cs_test_%d" % n,
                                    "client_reference_id": form.get("client_reference_id"), "mode": "subscription"})
        if method == "POST" and url.path == "/v1/billing_portal/sessions":
            if not form.get("customer"):
                return self.error(400, "parameter_missing", "customer is required")
            return self.reply(200, {"id": "bps_%d" % n, "object": "billing_portal.session", "customer": form["customer"],
                                    "url": "https://billing.stripe.test/p/session/%d" % n})
        if method == "POST" and url.path == "/v1/coupons":
            with LOCK:
                if form.get("id") in STATE["coupons"]:
                    return self.error(400, "resource_already_exists", "Coupon already exists.")
                coupon = {"id": form.get("id"), "object": "coupon", "percent_off": float(form.get("percent_off", 0)),
                          "duration": form.get("duration"), "duration_in_months": int(form.get("duration_in_months", 0)),
                          "name": form.get("name")}
                STATE["coupons"][coupon["id"]] = coupon
            return self.reply(200, coupon)
        if method == "POST" and url.path == "/v1/promotion_codes":
            with LOCK:
                code = form.get("code")
                if code in STATE["promotion_codes"]:
                    return self.error(400, "resource_already_exists", "A promotion code with this code already exists.")
                if form.get("coupon") not in STATE["coupons"]:
                    return self.error(400, "resource_missing", "No such coupon")
                promo = {"id": "promo_%s" % code.lower(), "object": "promotion_code", "code": code, "active": True,
                         "coupon": STATE["coupons"][form["coupon"]]}
                STATE["promotion_codes"][code] = promo
            return self.reply(200, promo)
        if method == "GET" and url.path == "/v1/promotion_codes":
            with LOCK:
                data = [p for p in STATE["promotion_codes"].values() if p["code"] == query.get("code")]
            return self.reply(200, {"object": "list", "data": data, "has_more": False})
        if method == "GET" and url.path == "/v1/billing/meters":
            return self.reply(200, {"object": "list", "has_more": False, "data": [
                {"id": "mtr_test_1", "object": "billing.meter", "event_name": "driftlock_detections",
                 "default_aggregation": {"formula": "sum"}, "status": "active"}]})
        if method == "GET" and url.path == "/v1/billing/meters/mtr_test_1/event_summaries":
            customer = query.get("customer")
            if not customer or "start_time" not in query or "end_time" not in query:
                return self.error(400, "parameter_missing", "customer, start_time and end_time are required")
            with LOCK:
                total = sum(e["value"] for e in STATE["meter_events"].values() if e["customer"] == customer)
            return self.reply(200, {"object": "list", "has_more": False, "data": [
                {"id": "mtrusum_1", "object": "billing.meter_event_summary", "aggregated_value": float(total),
                 "meter": "mtr_test_1", "start_time": int(query["start_time"]), "end_time": int(query["end_time"])}]})
        if method == "POST" and url.path == "/v1/billing/meter_events":
            ident = form.get("identifier")
            with LOCK:
                if ident in STATE["meter_events"]:
                    STATE["duplicates"] += 1
                    return self.error(400, "resource_already_exists", "An event already exists with identifier " + ident)
                STATE["meter_events"][ident] = {"event_name": form.get("event_name"),
                                                "customer": form.get("payload[stripe_customer_id]"),
                                                "value": int(form.get("payload[value]", "0")),
                                                "timestamp": form.get("timestamp")}
            return self.reply(200, {"object": "billing.meter_event", "identifier": ident, "event_name": form.get("event_name")})
        return self.error(404, "resource_missing", "Unrecognized request URL (%s: %s)" % (method, url.path))

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")


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
