"""GitHub's OpenAPI description of the runner endpoints, as JSON Schema validators.

The document is OpenAPI 3.0 (``nullable``); it is converted to JSON Schema 2020-12 once, and
registered as one resource so any ``$ref`` inside it resolves against the document itself.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# A copy of ../shared/github-openapi-runners.json (GitHub's own extract; see its "source").
DESCRIPTION = Path(__file__).with_name("github-openapi-runners.json")
BASE_URI = "urn:github-openapi-runners"


def _to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _to_json_schema(value) for key, value in node.items()}
    if converted.pop("nullable", False):
        if "type" in converted:
            kind = converted["type"]
            converted["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
        if "enum" in converted:
            converted["enum"] = [*converted["enum"], None]
    return converted


@cache
def _document() -> tuple[dict[str, Any], Registry]:
    document = _to_json_schema(json.loads(DESCRIPTION.read_text()))
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    return document, Registry().with_resource(BASE_URI, resource)


def _pointer_escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def response_validator(method: str, path: str, status: int) -> Draft202012Validator:
    """The validator of the documented body of ``method path`` answering ``status``.

    Statuses the operation does not document (GitHub's common 401/403/404/429 answers) are
    validated against the ``basic-error`` schema, which is what GitHub sends for them.
    """
    document, registry = _document()
    section, index = _operation_location(document, method, path)
    response = document[section][index]["responses"].get(str(status))
    if response is not None and "content" in response:
        parts = [section, str(index), "responses", str(status), "content"]
        parts += ["application/json", "schema"]
    else:
        parts = ["components", "schemas", "basic-error"]
    pointer = "/".join(_pointer_escape(part) for part in parts)
    return Draft202012Validator({"$ref": f"{BASE_URI}#/{pointer}"}, registry=registry)


def _operation_location(document: dict[str, Any], method: str, path: str) -> tuple[str, int]:
    for section in ("operations", "extra_operations"):
        for index, operation in enumerate(document[section]):
            if operation["method"] == method and operation["path"] == path:
                return section, index
    raise KeyError(f"{method} {path} is not in {DESCRIPTION.name}")
