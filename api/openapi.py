"""Request validation with pydantic, and the OpenAPI document built from it.

`@body(Model)` validates the JSON body and passes it as `payload`; the same
models (and `@responds`) feed `/api/v1/openapi.json`, so the document cannot
drift from what the code accepts.
"""
from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable
from typing import Any

from flask import Flask, request
from pydantic import BaseModel, ValidationError

from api.errors import ApiError
from broadcast import jsontext


def _validation_message(exc: ValidationError) -> tuple[str, list]:
    details = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
               for e in exc.errors(include_url=False, include_context=False, include_input=False)]
    first = details[0] if details else {"field": "", "message": "invalid"}
    return f"{first['field'] or 'body'}: {first['message']}", details


def parse(model: type[BaseModel], data: Any) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, details = _validation_message(exc)
        raise ApiError(400, "validation_error", message, details=details) from None


def json_value(raw: bytes) -> Any:
    """`raw` parsed strictly (PROTOCOL.md section 2: depth, lone surrogates); 400 otherwise."""
    try:
        return jsontext.loads(raw)
    except jsontext.JsonRefused as exc:
        raise ApiError(400, exc.code, exc.message) from None


def json_body() -> Any:
    """The request's JSON object; 400 otherwise."""
    if not request.is_json:
        raise ApiError(400, "invalid_json", "send a JSON object with Content-Type: application/json")
    data = json_value(request.get_data(cache=True))
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def body(model: type[BaseModel]) -> Callable:
    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            return view(*args, payload=parse(model, json_body()), **kwargs)
        wrapper._sb_body = model
        return wrapper
    return decorator


def query(model: type[BaseModel]) -> Callable:
    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            return view(*args, params=parse(model, request.args.to_dict()), **kwargs)
        wrapper._sb_query = model
        return wrapper
    return decorator


def responds(status: int, model: type[BaseModel] | None = None, description: str = "") -> Callable:
    def decorator(view: Callable) -> Callable:
        responses = dict(getattr(view, "_sb_responses", {}))
        responses[status] = (model, description)
        view._sb_responses = responses
        return view
    return decorator


def _schema(model: type[BaseModel], components: dict) -> dict:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}


def build_spec(app: Flask) -> dict:
    components: dict = {"Error": ERROR_SCHEMA}
    paths: dict = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or rule.rule.startswith("/static"):
            continue
        view = app.view_functions[rule.endpoint]
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict = {"operationId": f"{rule.endpoint}.{method.lower()}",
                        "summary": (view.__doc__ or "").strip().split("\n")[0]}
            params = [{"name": arg, "in": "path", "required": True,
                       "schema": {"type": "string", "maxLength": 64}} for arg in rule.arguments]
            q = getattr(view, "_sb_query", None)
            if q is not None:
                for name, field in q.model_fields.items():
                    params.append({"name": field.alias or name, "in": "query",
                                   "required": field.is_required(), "schema": {"type": "string"}})
            if params:
                op["parameters"] = params
            model = getattr(view, "_sb_body", None)
            if model is not None:
                op["requestBody"] = {"required": True, "content": {
                    "application/json": {"schema": _schema(model, components)}}}
            responses: dict = {}
            for status, (resp_model, description) in getattr(view, "_sb_responses", {}).items():
                entry: dict = {"description": description or "ok"}
                if resp_model is not None:
                    entry["content"] = {"application/json": {"schema": _schema(resp_model, components)}}
                responses[str(status)] = entry
            if not responses:
                responses["200"] = {"description": "ok"}
            err = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            if hasattr(view, "_sb_roles"):
                op["security"] = [{"bearer": []}]
                responses.setdefault("401", {"description": "missing or invalid token", **err})
                responses.setdefault("403", {"description": "not allowed", **err})
                op["x-roles"] = list(view._sb_roles)
            if model is not None:
                responses.setdefault("400", {"description": "invalid body", **err})
            responses.setdefault("429", {"description": "rate limited", **err})
            op["responses"] = responses
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Switchboard", "version": "1.0.0",
                 "description": "Real-time layer for an online shop (PROTOCOL.md)."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


def docs_page(spec: dict) -> str:
    """A self-contained reference page (no CDN: it works offline)."""
    rows = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            roles = ", ".join(op.get("x-roles", [])) or "public"
            codes = ", ".join(op["responses"])
            rows.append(f"<tr><td><b>{method.upper()}</b></td><td><code>{html.escape(path)}</code></td>"
                        f"<td>{html.escape(op['summary'])}</td><td>{roles}</td><td>{codes}</td></tr>")
    return ("<!doctype html><meta charset=utf-8><title>Switchboard API</title>"
            "<style>body{font-family:system-ui;margin:2em}td{padding:4px 10px;border-bottom:1px solid #ddd}</style>"
            "<h1>Switchboard API</h1><p>Machine-readable: <a href='/api/v1/openapi.json'>/api/v1/openapi.json</a></p>"
            "<table><tr><th>method</th><th>path</th><th>what</th><th>roles</th><th>statuses</th></tr>"
            + "".join(rows) + "</table>")
