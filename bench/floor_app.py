"""The app `bench/flask_floor.py` serves: the reservation request answered with no work."""
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return {"ok": True}


@app.post("/api/v1/reservations")
def reserve():
    body = request.get_json()
    return jsonify({"id": "0" * 26, "product_id": body["product_id"], "location_id": "main",
                    "quantity": body["quantity"], "status": "held",
                    "expires_at": "2026-12-03T22:00:00+00:00"}), 201
