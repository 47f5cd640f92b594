"""Open311's wire format: a resource's answer as JSON or XML, and errors as the spec's list.

The use cases return plain data (dicts and lists of dicts, values of str, int, float, bool,
datetime or None, lists of those or of dicts); ``render`` writes it in the format asked for
by the URL's suffix. XML follows the spec's shapes: a list is a root element holding one
element per item (``services`` > ``service``), a list-valued field an element holding one
child per value (``keywords`` is a string, ``values`` > ``value``), None an empty element.
Times are ISO 8601 with their zone (the city's).
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from xml.etree import ElementTree

from flask import Response

FORMATS = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
# What XML 1.0 cannot carry (control characters but tab and line ends, surrogates, U+FFFE/F).
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> bool:
    """Can ``text`` be written in XML 1.0 as it is?"""
    return NOT_XML.search(text) is None


class Open311Error(Exception):
    """A failure the client is told of as ``[{"code": status, "description": ...}, ...]``: one
    entry per problem found (``description`` a string, or a list of them)."""

    def __init__(self, status: int, description: str | list[str], headers: dict | None = None):
        self.descriptions = [description] if isinstance(description, str) else list(description)
        super().__init__("; ".join(self.descriptions))
        self.status, self.headers = status, headers or {}


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return NOT_XML.sub("\ufffd", str(value))  # a staff note may hold one: never an unreadable feed


def _element(parent: ElementTree.Element, name: str, value, item_names: dict[str, str]) -> None:
    node = ElementTree.SubElement(parent, name)
    if isinstance(value, dict):
        for key, inner in value.items():
            _element(node, key, inner, item_names)
    elif isinstance(value, list):
        for inner in value:
            _element(node, item_names.get(name, name[:-1]), inner, item_names)
    else:
        node.text = _text(value)


def to_xml(root: str, item: str | None, data, item_names: dict[str, str] | None = None) -> bytes:
    """``data`` under ``<root>``: a list, each entry an ``<item>``; one dict with ``item``
    None, its fields straight under the root (discovery, a service definition)."""
    names = item_names or {}
    top = ElementTree.Element(root)
    if item is None:
        for key, value in data.items():
            _element(top, key, value, names)
    for entry in (data if item is not None else []):
        node = ElementTree.SubElement(top, item)
        for key, value in entry.items():
            _element(node, key, value, names)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(top, encoding="unicode").encode()


def render(fmt: str, data, *, root: str, item: str | None, item_names: dict[str, str] | None = None,
           status: int = 200, headers: dict | None = None) -> Response:
    """The answer in ``fmt`` (json or xml)."""
    plain = _plain(data)
    if fmt == "json":
        body = json.dumps(plain, ensure_ascii=False).encode()
    else:
        body = to_xml(root, item, plain, item_names)
    return Response(body, status=status, content_type=FORMATS[fmt], headers=headers or {})


def error(fmt: str, failure: Open311Error) -> Response:
    """The spec's error list."""
    return render(fmt, [{"code": failure.status, "description": text} for text in failure.descriptions], root="errors",
                  item="error", status=failure.status, headers=failure.headers)
