"""Request validation with pydantic, and the OpenAPI document built from it.

`@body(Model)` validates the JSON body and passes it as `payload`; the same
models (and `@responds`) feed `/api/v1/openapi.json`, so the document cannot
drift from what the code accepts.
"""
from __future__ import annotations

import functools
import html
import json
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
    """Query parameters (strings, coerced as the model's types say); 400 otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, details = _validation_message(exc)
        raise ApiError(400, "validation_error", message, details=details) from None


def parse_body(model: type[BaseModel], data: dict) -> BaseModel:
    """A JSON body, validated strictly: what the document says, no coercion (`false` is not 0).

    Validated as JSON text (where an ISO date-time string is a date-time), written
    back from what `jsontext` parsed, where 4.0 became the integer it is in JSON.
    """
    try:
        return model.model_validate_json(json.dumps(data), strict=True)
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
            return view(*args, payload=parse_body(model, json_body()), **kwargs)
        wrapper._sb_body = model
        return wrapper
    return decorator


def query(model: type[BaseModel]) -> Callable:
    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            args_ = request.args.to_dict()
            if any("\x00" in value for value in args_.values()):
                raise ApiError(400, "invalid_string", "query parameters may not hold NUL")
            return view(*args, params=parse(model, args_), **kwargs)
        wrapper._sb_query = model
        return wrapper
    return decorator


def multipart(field: str) -> Callable:
    """Document a view that takes one file, as multipart form field `field`."""
    def decorator(view: Callable) -> Callable:
        view._sb_file = field
        return view
    return decorator


def responds(status: int, model: type[BaseModel] | None = None, description: str = "") -> Callable:
    def decorator(view: Callable) -> Callable:
        responses = dict(getattr(view, "_sb_responses", {}))
        responses[status] = (model, description)
        view._sb_responses = responses
        return view
    return decorator


def _schema(model: type[BaseModel], components: dict, owners: dict) -> dict:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    # One name, one model: two models of one name would overwrite each other.
    owner = owners.setdefault(model.__name__, model)
    if owner is not model:
        raise ValueError(f"two models are named {model.__name__}: {owner.__module__} and {model.__module__}")
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}
_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "required": True,
                                "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
_CONVERTER = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")


def _path_parameters(app: Flask, rule) -> list[dict]:
    params = []
    for converter, name in _CONVERTER.findall(rule.rule):
        kind = app.url_map.converters.get(converter or "default")
        schema = kind.openapi() if hasattr(kind, "openapi") else {"type": "string", "minLength": 1}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _query_parameters(model: type[BaseModel]) -> list[dict]:
    """Each field of the query model, typed as the model validates it."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema.get("properties", {}).items():
        # A query string has no null: an optional parameter is one left out.
        options = [p for p in prop.get("anyOf", ()) if p.get("type") != "null"]
        if options:
            prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **options[0]} \
                if len(options) == 1 else {**prop, "anyOf": options}
        prop = {k: v for k, v in prop.items() if k not in ("title", "default")}
        params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return params


def _responses(view: Callable, components: dict, owners: dict, *, authenticated: bool,
               has_input: bool, has_path: bool) -> dict:
    responses: dict = {}
    for status, (resp_model, description) in getattr(view, "_sb_responses", {}).items():
        entry: dict = {"description": description or "ok"}
        if resp_model is not None:
            entry["content"] = {"application/json": {"schema": _schema(resp_model, components, owners)}}
        elif status >= 400:
            entry.update(_ERROR)
        responses[str(status)] = entry
    if not any(code < "400" for code in responses):
        responses["200"] = {"description": "ok"}
    # What every operation may answer, by the shared mechanisms that answer it.
    if authenticated:
        responses.setdefault("401", {"description": "missing, invalid or expired token", **_ERROR})
        responses.setdefault("403", {"description": "the token's role may not do this", **_ERROR})
    if has_input:
        responses.setdefault("400", {"description": "a parameter or the body is invalid", **_ERROR})
    if has_path:
        responses.setdefault("404", {"description": "nothing of that id (or not yours)", **_ERROR})
    responses.setdefault("413", {"description": "a body over 1 MiB", **_ERROR})
    # gunicorn's own refusal (api/edges.py makes it JSON), whatever the parameters declare:
    # a query string can be made long with repeated or undeclared parameters.
    responses.setdefault("414", {"description": "a request line over 4094 bytes", **_ERROR})
    responses.setdefault("429", {"description": "rate limited", "headers": _RETRY_AFTER, **_ERROR})
    responses.setdefault("503", {"description": "a dependency (database, Redis, broker) is down",
                                 "headers": _RETRY_AFTER, **_ERROR})
    return responses


def build_spec(app: Flask) -> dict:
    components: dict = {"Error": ERROR_SCHEMA}
    owners: dict = {}
    paths: dict = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or rule.rule.startswith("/static"):
            continue
        view = app.view_functions[rule.endpoint]
        path = _CONVERTER.sub(r"{\2}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict = {"operationId": f"{rule.endpoint}.{method.lower()}",
                        "summary": (view.__doc__ or "").strip().split("\n")[0]}
            path_params = _path_parameters(app, rule)
            q = getattr(view, "_sb_query", None)
            params = path_params + (_query_parameters(q) if q is not None else [])
            if params:
                op["parameters"] = params
            model = getattr(view, "_sb_body", None)
            upload = getattr(view, "_sb_file", None)
            if model is not None:
                op["requestBody"] = {"required": True, "content": {
                    "application/json": {"schema": _schema(model, components, owners)}}}
            elif upload is not None:
                op["requestBody"] = {"required": True, "content": {"multipart/form-data": {
                    "schema": {"type": "object", "required": [upload],
                               "properties": {upload: {"type": "string", "format": "binary"}}}}}}
            if hasattr(view, "_sb_roles"):
                op["security"] = [{"bearer": []}]
                op["x-roles"] = list(view._sb_roles)
            op["responses"] = _responses(view, components, owners,
                                         authenticated=hasattr(view, "_sb_roles"),
                                         has_input=bool(params) or model is not None or bool(upload),
                                         has_path=bool(path_params))
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Switchboard", "version": "1.1.0",
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
