"""The service's API as an OpenAPI 3.1 document, and a page that shows it (served locally, no CDN)."""

from __future__ import annotations

import html

__all__ = ["OPENAPI", "docs_page"]

_RESULT = {
    "type": "object",
    "properties": {
        "input": {"type": "string", "description": "the picture's name, or 'request body[i]' for an IDX body"},
        "class": {"type": "integer"},
        "label": {"type": "string"},
        "scores": {"type": "array", "items": {"type": "integer"}, "description": "last-layer accumulators"},
    },
}
_ERROR = {
    "description": "bad request",
    "content": {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}},
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "bnn", "version": "1", "description": "Binarized LFC networks (BNN-PYNQ W1A1/W1A2), bit-exact."},
    "paths": {
        "/healthz": {
            "get": {"summary": "200 when the classifiers are ready", "responses": {"200": {"description": "ready"}}}
        },
        "/v1/models": {
            "get": {
                "summary": "The loaded networks: classes, decision rule, runtime, kernel",
                "responses": {"200": {"description": "the models"}},
            }
        },
        "/v1/classify": {
            "post": {
                "summary": "Classify a picture, an IDX file, or several uploaded files",
                "description": "Pictures go through the network's own preprocessing (classify_image: an "
                "LFC's MNIST-style digit, a CNV's 32x32 thumbnail); a dataset body (an IDX file for an LFC, "
                "binary CIFAR-10 records for a CNV) is classified image by image. Requests arriving together "
                "are batched.",
                "parameters": [
                    {
                        "name": "model",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "network name (default: the first loaded)",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "image/png": _BINARY,
                        "image/jpeg": _BINARY,
                        "application/x-idx": _BINARY,
                        "application/x-cifar10": _BINARY,
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                                },
                            }
                        },
                    },
                },
                "responses": {
                    "200": {
                        "description": "one result per image",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "model": {"type": "string"},
                                        "results": {"type": "array", "items": _RESULT},
                                        "ms": {"type": "number"},
                                    },
                                }
                            }
                        },
                    },
                    "400": _ERROR,
                    "404": {"description": "unknown model"},
                    "408": {"description": "body not received in time"},
                    "413": {"description": "body or image count over the limit"},
                    "415": {"description": "unsupported content type"},
                },
            }
        },
    },
}


def docs_page() -> str:
    """The OpenAPI document as a plain HTML page."""
    rows = []
    for path, methods in OPENAPI["paths"].items():
        for method, op in methods.items():
            body = ", ".join(op.get("requestBody", {}).get("content", {}))
            codes = ", ".join(f"{k} {v['description']}" for k, v in op["responses"].items())
            rows.append(
                f"<tr><td><code>{method.upper()} {html.escape(path)}</code></td><td>{html.escape(op['summary'])}"
                f"<br><small>{html.escape(op.get('description', ''))}</small></td><td>{html.escape(body)}</td>"
                f"<td>{html.escape(codes)}</td></tr>"
            )
    return (
        "<!doctype html><meta charset=utf-8><title>bnn API</title>"
        "<style>body{font:15px system-ui;margin:2em}"
        "td{border-top:1px solid #ddd;padding:.4em;vertical-align:top}</style>"
        "<h1>bnn API</h1><p>Machine-readable: <a href=/openapi.json>/openapi.json</a> (OpenAPI 3.1).</p>"
        "<table><tr><th>endpoint</th><th>what</th><th>request body</th><th>responses</th></tr>"
        + "".join(rows)
        + "</table>"
    )
