"""The shipped OpenAPI schema, and checking a live answer against it."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import httpx
import jsonschema
import referencing
import referencing.jsonschema

SPEC = json.loads(
    resources.files("replay_engine._serve")
    .joinpath("static", "openapi.json")
    .read_text(encoding="utf-8")
)
_REGISTRY = referencing.Registry().with_resource(
    "urn:openapi",
    referencing.Resource.from_contents(
        SPEC, default_specification=referencing.jsonschema.DRAFT202012
    ),
)


def conforms(response: httpx.Response, path: str, method: str = "get") -> Any:
    """The response's JSON, validated against the spec's schema for its status."""
    spec = SPEC["paths"][path][method]["responses"]
    assert str(response.status_code) in spec, (
        path,
        response.status_code,
        response.text,
    )
    pointer = (
        "urn:openapi#/paths/"
        + path.replace("~", "~0").replace("/", "~1")
        + f"/{method}/responses/{response.status_code}/content/application~1json/schema"
    )
    doc = response.json()
    jsonschema.Draft202012Validator({"$ref": pointer}, registry=_REGISTRY).validate(doc)
    return doc
