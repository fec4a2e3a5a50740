"""SVG logos cut down to a safe subset: shapes, text, gradients and local references only.

Threat model: a customer_admin uploads the logo (``PUT /api/v1/customers/{slug}/profile``)
and every report of that customer renders it, in the collector, with WeasyPrint; the HTML
report carries it to browsers. An SVG is a document that can point elsewhere: ``<image
href='http://10.0.0.5/...'>`` or ``xlink:href='file:///etc/...'`` would make the collector
fetch an internal URL (SSRF) or embed a local file's text in a customer-downloadable PDF;
``<script>``, event handlers and ``<foreignObject>`` run or embed active content in a
browser; ``<use>`` nested ten deep, ten wide is ten billion shapes (a 97 KB file kept one
render busy for 45 s); a DOCTYPE declares entities (the billion-laughs expansion).

So the logo is parsed (no DOCTYPE, no entities), every element checked against an allow
list, every reference required to be local (``#id``) or an embedded raster ``data:`` image,
and its size bounded (elements, nesting depth, shapes after expanding ``<use>``). What
passes is re-serialised from the parsed tree, so the stored bytes are exactly what was
checked. Foreign-namespace elements and attributes (Inkscape's ``sodipodi:``, RDF
metadata) are dropped silently; a disallowed SVG element is an error naming it.

The renderer's URL fetcher (:mod:`collector.reports.url_fetcher`) refuses everything but
``data:`` as a second line, so a logo stored before this check cannot fetch anything either.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

__all__ = ["MAX_DEPTH", "MAX_ELEMENTS", "MAX_EXPANDED", "SvgLogoError", "sanitize_svg"]

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
_SVG = "{" + SVG_NS + "}"
_XLINK_HREF = "{" + XLINK_NS + "}href"

MAX_ELEMENTS = 5_000
"""Elements in the file (a real logo has tens to hundreds)."""
MAX_DEPTH = 32
"""Nesting depth of elements."""
MAX_EXPANDED = 20_000
"""Elements drawn once every ``<use>`` is expanded (nested ``<use>`` multiplies)."""

_ALLOWED_ELEMENTS = frozenset(
    {
        "svg", "g", "defs", "title", "desc", "symbol", "use", "style",
        "path", "rect", "circle", "ellipse", "line", "polyline", "polygon",
        "text", "tspan", "textPath",
        "linearGradient", "radialGradient", "stop", "pattern", "clipPath", "mask",
        "image", "metadata",
    }
)  # fmt: skip
"""Drawing elements. Not: script, foreignObject, a, iframe, animation, filters (feImage fetches)."""

_REFERENCE_ATTRS = frozenset({"href", _XLINK_HREF})
_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*\Z")
_URL_CALL = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
_CSS_IMPORT = re.compile(r"@import|@font-face", re.IGNORECASE)


class SvgLogoError(ValueError):
    """The SVG cannot be used as a logo; the message says what to change."""


def _local(tag: str) -> str | None:
    """The SVG-namespace local name of ``tag``; None for another namespace (or a comment)."""
    if not isinstance(tag, str) or not tag.startswith(_SVG):
        return None
    return tag[len(_SVG) :]


def _check_css(text: str, where: str) -> None:
    if _CSS_IMPORT.search(text):
        raise SvgLogoError(f"{where}: @import and @font-face are not allowed in an SVG logo")
    for match in _URL_CALL.finditer(text):
        if not match.group(2).strip().startswith("#"):
            raise SvgLogoError(
                f"{where}: url({match.group(2)[:60]!r}) is an external reference; "
                "an SVG logo may only refer to its own elements (url(#id))"
            )


def _clean(element: ET.Element, depth: int, count: list[int]) -> None:
    """Check ``element`` in place: drop foreign parts, refuse dangerous ones."""
    name = _local(element.tag)
    if depth > MAX_DEPTH:
        raise SvgLogoError(f"elements are nested more than {MAX_DEPTH} deep; simplify the logo")
    count[0] += 1
    if count[0] > MAX_ELEMENTS:
        raise SvgLogoError(f"more than {MAX_ELEMENTS} elements; simplify the logo or upload a PNG")
    if name is None or name not in _ALLOWED_ELEMENTS:
        raise SvgLogoError(
            f"element <{name}> is not allowed in an SVG logo "
            "(shapes, text, gradients and embedded PNG/JPEG images only)"
        )
    for attr in list(element.attrib):
        value = element.attrib[attr]
        if attr in _REFERENCE_ATTRS:
            target = value.strip()
            if target.startswith("#") or (name == "image" and _DATA_IMAGE.match(target)):
                del element.attrib[attr]
                element.attrib["href"] = target  # SVG 2's plain href: no xlink prefix to serialise
                continue
            raise SvgLogoError(
                f"<{name}> refers to {target[:60]!r}; an SVG logo may only refer to its own "
                "elements (#id) or embed a PNG/JPEG/GIF/WebP as a data: URI"
            )
        if attr.startswith("{"):  # another namespace's attribute (sodipodi:, inkscape:, xml:space)
            if not attr.startswith("{http://www.w3.org/XML/1998/namespace}"):
                del element.attrib[attr]
            continue
        if attr.lower().startswith("on"):
            raise SvgLogoError(f"<{name}> has an event handler ({attr}); scripts are not allowed")
        _check_css(value, f"<{name} {attr}>")
    if name == "image" and not any(a in element.attrib for a in _REFERENCE_ATTRS):
        raise SvgLogoError("<image> without an embedded data: image")
    if name == "style":
        _check_css(element.text or "", "<style>")
    if name == "metadata":  # RDF and friends: nothing a renderer needs
        element.clear()
        return
    for child in list(element):
        if _local(child.tag) is None:  # sodipodi:namedview, comments and the like
            element.remove(child)
            continue
        _clean(child, depth + 1, count)


def _expanded_size(root: ET.Element) -> int:
    """Elements drawn after expanding every ``<use>``; SvgLogoError past MAX_EXPANDED or on a cycle."""
    by_id = {e.attrib["id"]: e for e in root.iter() if "id" in e.attrib}
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(element: ET.Element) -> int:
        key = id(element)
        if key in memo:
            return memo[key]
        if key in active:
            raise SvgLogoError("<use> elements refer to each other in a cycle")
        active.add(key)
        total = 1
        if _local(element.tag) == "use":
            ref = (element.attrib.get("href") or element.attrib.get(_XLINK_HREF) or "").strip()
            target = by_id.get(ref[1:]) if ref.startswith("#") else None
            if target is not None:
                total += size(target)
        for child in element:
            total += size(child)
            if total > MAX_EXPANDED:
                raise SvgLogoError(
                    f"the logo draws more than {MAX_EXPANDED} elements once its <use> references are "
                    "expanded (nested <use>); simplify it or upload a PNG"
                )
        active.discard(key)
        memo[key] = total
        return total

    return size(root)


def sanitize_svg(data: bytes) -> bytes:
    """The SVG re-serialised from its checked tree; SvgLogoError saying what is not allowed.

    >>> sanitize_svg(b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="4" height="2"/></svg>')
    b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="4" height="2" /></svg>'
    >>> sanitize_svg(b'<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/x"/></svg>')
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    collector.reports.svg_logo.SvgLogoError: <image> refers to 'file:///etc/x'; ...
    """
    lowered = data.lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise SvgLogoError("a DOCTYPE or entity declaration is not allowed in an SVG logo")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line, column = exc.position
        raise SvgLogoError(f"not well-formed XML at line {line}, column {column + 1}") from None
    if root.tag != _SVG + "svg":
        raise SvgLogoError(f'the root element must be <svg xmlns="{SVG_NS}">, not {root.tag!r}')
    _clean(root, 1, [0])
    _expanded_size(root)
    # Serialised with SVG as the default namespace, written out by hand: registering a prefix
    # is global to the process (another library may own it) and ElementTree's
    # default_namespace refuses the plain attribute names SVG uses.
    for element in root.iter():
        element.tag = element.tag[len(_SVG) :]
    root.attrib["xmlns"] = SVG_NS
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return out
