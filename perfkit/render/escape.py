"""Escaping untrusted text (function, file and thread names from the target) for SVG/HTML.

Control characters, bidi controls (U+202A–202E, U+2066–2069) and zero-width characters
(U+200B–200F, U+2060, U+FEFF) are shown escaped (``\\n``, ``\\u202e``), markup characters become entities,
and the result is always valid in XML 1.0 text and in double- or single-quoted
attributes.  Lone surrogates are handled when the document is encoded (``encode``).
"""

from __future__ import annotations

_CONTROL = {i: f"\\x{i:02x}" for i in range(32)}
_CONTROL.update({9: "\\t", 10: "\\n", 13: "\\r", 127: "\\x7f", 0xFFFE: "\\ufffe", 0xFFFF: "\\uffff"})
# bidi overrides/isolates and zero-width characters (they reorder or hide text in a viewer)
INVISIBLE = (*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2060, 0xFEFF, 0x061C)
_CONTROL.update({c: f"\\u{c:04x}" for c in INVISIBLE})
_CONTROL.update({c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})  # C1 controls (0x9b is a one-byte CSI)
# inside a JSON island: the same characters become a visible backslash escape once the page parses it
_JSON_VISIBLE = {c: f"\\\\u{c:04x}" for c in (*INVISIBLE, *range(0x80, 0xA0))}
_MARKUP = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord('"'): "&quot;", ord("'"): "&#39;"}
_BOTH = {**_CONTROL, **_MARKUP}


def visible(text: object) -> str:
    """Control characters shown as escapes (no markup escaping)."""
    return str(text).translate(_CONTROL)


# Bidi overrides/isolates and zero-width characters reorder or hide text in a viewer.
_INVISIBLE = {c: f"\\u{c:04x}" for c in (*range(0x200B, 0x2010), *range(0x202A, 0x202F),
                                          *range(0x2066, 0x206A), 0x061C, 0xFEFF, 0x2028, 0x2029)}
_PLAIN = {**_CONTROL, **{i: f"\\x{i:02x}" for i in range(0x80, 0xA0)}, **_INVISIBLE}


def plain(text: object) -> str:
    """For plain-text documents (HTTP text/plain, logs): control, C1, bidi and
    zero-width characters shown as escapes."""
    return str(text).translate(_PLAIN)


def xml(text: object) -> str:
    """Safe for XML/HTML text and attribute values."""
    return str(text).translate(_BOTH)


def markup(text: object) -> str:
    """Markup characters only (for text whose control characters were already made visible
    and whose real newlines separate fields, e.g. a tooltip)."""
    return str(text).translate(_MARKUP)


def encode(document: str) -> bytes:
    """UTF-8 bytes; lone surrogates (undecodable names) become visible escapes."""
    return document.encode("utf-8", "backslashreplace")


def json_for_script(doc) -> str:
    """JSON safe to embed inside ``<script type="application/json">`` (no ``</script>``); bidi,
    zero-width and C1 characters arrive in the page as visible ``\\u202e`` text, never raw."""
    import json

    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).translate(_JSON_VISIBLE)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
