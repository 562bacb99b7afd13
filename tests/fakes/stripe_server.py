"""A fake Stripe API on a real local HTTP server (a thread): the stripe SDK talks to it through STRIPE_API_BASE.

It implements just what Tingxie calls: Checkout Sessions (create with idempotency keys, retrieve, list with
`created[gte]`, `status`, `payment_intent` and cursor paging), refunds by charge and invoices by customer.
Tests drive it with `pay()`, `refund()`, `dispute()` and `foreign_session()`, which also return the object a webhook
would carry.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


def parse_stripe_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][0][c]=x` (Stripe's form encoding) -> {"a": {"b": [{"c": "x"}]}}."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt_is_index = not last and parts[i + 1].isdigit()
            if isinstance(node, list):
                idx = int(part)
                while len(node) <= idx:
                    node.append(None)
                if last:
                    node[idx] = value
                else:
                    if node[idx] is None:
                        node[idx] = [] if nxt_is_index else {}
                    node = node[idx]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, [] if nxt_is_index else {})
    return root


class FakeStripe:
    """State of the fake account plus the server that serves it."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.idempotency: dict[str, str] = {}
        self.fail_next = 0  # answer this many requests with a 500
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.clock = int(time.time())
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- lifecycle -------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeStripe:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _id(self, prefix: str) -> str:
        return f"{prefix}_test_{next(self._ids):06d}"

    # --- test drivers ------------------------------------------------------------------
    def session_create(self, params: dict[str, Any]) -> dict[str, Any]:
        line = params["line_items"][0]["price_data"]
        sid = self._id("cs")
        self.clock += 1
        session = {
            "id": sid,
            "object": "checkout.session",
            "mode": params.get("mode"),
            "status": "open",
            "payment_status": "unpaid",
            "currency": line["currency"],
            "amount_total": int(line["unit_amount"]) * int(params["line_items"][0].get("quantity", 1)),
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "customer": params.get("customer"),
            "payment_intent": None,
            "invoice": None,
            "created": self.clock,
            "url": f"https://checkout.stripe.test/c/pay/{sid}",
            "livemode": False,
        }
        self.sessions[sid] = session
        return session

    def pay(self, session_id: str, *, asynchronous: bool = False, settle: bool = True) -> dict[str, Any]:
        """Complete a session. With `asynchronous`, completion leaves it unpaid until `settle`."""
        s = self.sessions[session_id]
        s["status"] = "complete"
        s["payment_intent"] = s["payment_intent"] or self._id("pi")
        s["customer"] = s["customer"] or self._id("cus")
        if asynchronous and not settle:
            s["payment_status"] = "unpaid"
            return dict(s)
        s["payment_status"] = "paid"
        if not s["invoice"]:
            inv = self._id("in")
            self.invoices[inv] = {
                "id": inv,
                "object": "invoice",
                "customer": s["customer"],
                "status": "paid",
                "currency": s["currency"],
                "amount_paid": s["amount_total"],
                "total": s["amount_total"],
                "number": f"TX-{len(self.invoices) + 1:04d}",
                "created": s["created"],
                "hosted_invoice_url": f"https://invoice.stripe.test/i/{inv}",
                "invoice_pdf": f"https://pay.stripe.test/invoice/{inv}/pdf",
            }
            s["invoice"] = inv
        return dict(s)

    def foreign_session(self, *, amount_total: int, currency: str = "usd", metadata=None, **fields) -> dict[str, Any]:
        """A paid session created on the account by someone else than Tingxie's checkout (any metadata it likes)."""
        price = {"currency": currency, "unit_amount": str(amount_total)}
        session = self.session_create({"mode": "payment", "line_items": [{"price_data": price}]})
        session["metadata"] = metadata or {}
        session.update(fields)
        return self.pay(session["id"])

    def charge_id(self, session_id: str) -> str:
        return "ch_" + self.sessions[session_id]["payment_intent"][3:]

    def refund(self, session_id: str, amount: int | None = None) -> dict[str, Any]:
        """Refund (part of) a paid session; returns the Charge a `charge.refunded` event carries."""
        s = self.sessions[session_id]
        rid = self._id("re")
        self.clock += 1
        self.refunds[rid] = {
            "id": rid,
            "object": "refund",
            "amount": amount if amount is not None else s["amount_total"],
            "charge": self.charge_id(session_id),
            "payment_intent": s["payment_intent"],
            "status": "succeeded",
            "created": self.clock,
        }
        return self.charge(session_id)

    def charge(self, session_id: str, *, embed_refunds: bool = True) -> dict[str, Any]:
        s = self.sessions[session_id]
        cid = self.charge_id(session_id)
        refunds = [r for r in self.refunds.values() if r["charge"] == cid]
        charge = {
            "id": cid,
            "object": "charge",
            "amount": s["amount_total"],
            "amount_refunded": sum(r["amount"] for r in refunds),
            "currency": s["currency"],
            "payment_intent": s["payment_intent"],
            "refunded": sum(r["amount"] for r in refunds) >= s["amount_total"],
        }
        if embed_refunds:
            charge["refunds"] = {"object": "list", "data": refunds, "has_more": False}
        return charge

    def dispute(
        self,
        session_id: str,
        *,
        status: str = "needs_response",
        amount: int | None = None,
        dispute_id: str | None = None,
    ):
        s = self.sessions[session_id]
        return {
            "id": dispute_id or self._id("dp"),
            "object": "dispute",
            "amount": amount if amount is not None else s["amount_total"],
            "charge": self.charge_id(session_id),
            "payment_intent": s["payment_intent"],
            "currency": s["currency"],
            "reason": "fraudulent",
            "status": status,
        }

    # --- HTTP ----------------------------------------------------------------------------
    def _list(self, items: list[dict[str, Any]], query: dict[str, Any], url: str) -> dict[str, Any]:
        items = sorted(items, key=lambda o: (o.get("created", 0), o["id"]), reverse=True)
        if query.get("starting_after"):
            ids = [o["id"] for o in items]
            items = items[ids.index(query["starting_after"]) + 1 :]
        limit = int(query.get("limit", 10))
        return {"object": "list", "url": url, "data": items[:limit], "has_more": len(items) > limit}

    def handle(self, method: str, path: str, query: dict[str, Any], body: dict[str, Any], headers) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(
                {"method": method, "path": path, "query": query, "body": body, "headers": dict(headers)}
            )
            if self.fail_next > 0:
                self.fail_next -= 1
                return 500, {"error": {"type": "api_error", "message": "Fake outage."}}
            if not headers.get("Authorization", "").startswith("Bearer sk_test_"):
                return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API key."}}
            if method == "POST" and path == "/v1/checkout/sessions":
                key = headers.get("Idempotency-Key")
                if key and key in self.idempotency:
                    return 200, self.sessions[self.idempotency[key]]
                session = self.session_create(body)
                if key:
                    self.idempotency[key] = session["id"]
                return 200, session
            if method == "GET" and path == "/v1/checkout/sessions":
                items = list(self.sessions.values())
                if "payment_intent" in query:
                    items = [s for s in items if s["payment_intent"] == query["payment_intent"]]
                if "status" in query:
                    items = [s for s in items if s["status"] == query["status"]]
                gte = (query.get("created") or {}).get("gte")
                if gte is not None:
                    items = [s for s in items if s["created"] >= int(gte)]
                return 200, self._list(items, query, path)
            m = re.fullmatch(r"/v1/checkout/sessions/([\w-]+)", path)
            if method == "GET" and m:
                if m.group(1) not in self.sessions:
                    return 404, {"error": {"type": "invalid_request_error", "message": "No such checkout.session"}}
                return 200, self.sessions[m.group(1)]
            if method == "GET" and path == "/v1/refunds":
                items = [r for r in self.refunds.values() if r["charge"] == query.get("charge")]
                return 200, self._list(items, query, path)
            if method == "GET" and path == "/v1/invoices":
                items = [i for i in self.invoices.values() if i["customer"] == query.get("customer")]
                return 200, self._list(items, query, path)
            return 404, {
                "error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({method} {path})."}
            }

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = parse_stripe_form(parse_qsl(parts.query, keep_blank_values=True))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                body = parse_stripe_form(parse_qsl(raw, keep_blank_values=True))
                status, data = fake.handle(method, parts.path, query, body, self.headers)
                out = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.send_header("Request-Id", f"req_fake_{len(fake.requests)}")
                self.end_headers()
                self.wfile.write(out)

            def do_GET(self) -> None:  # noqa: N802
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler
