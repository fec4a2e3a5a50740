"""A small HTML reader for report tests: visible text, elements by id, table rows, references."""

from __future__ import annotations

from html.parser import HTMLParser


class ReportHTML(HTMLParser):
    """Collects text (outside <style>/<title>), text by element id, tags and URL-bearing attributes."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.by_id: dict[str, str] = {}
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.rows: list[list[str]] = []
        self._skip = 0
        self._ids: list[tuple[str, int]] = []
        self._depth = 0
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        for name in ("src", "href", "xlink:href", "action", "data", "poster"):
            if a.get(name):
                self.urls.append(str(a[name]))
        if tag in ("style", "title"):
            self._skip += 1
        if tag in ("br", "img", "meta", "line", "rect", "circle", "polyline", "polygon", "path"):
            return
        self._depth += 1
        if a.get("id"):
            self._ids.append((str(a["id"]), self._depth))
            self.by_id[str(a["id"])] = ""
        if tag == "tr":
            self._row = []
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip -= 1
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        while self._ids and self._ids[-1][1] >= self._depth:
            self._ids.pop()
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.texts.append(data)
        for ident, _ in self._ids:
            self.by_id[ident] += data
        if self._cell is not None:
            self._cell.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())
