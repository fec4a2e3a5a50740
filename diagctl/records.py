"""``diagctl records``: service records, customers' sign-offs and verification, over the API.

- ``records list``          every stored record (reports and service records), with SIGNED
- ``records show ID``       one record and its sign-off links and signatures
- ``records download ID``   its bytes (``-o FILE``, ``-o -``: standard output)
- ``records build KIND``    build a service record from the case or the store
- ``records sign ID``       a one-time link for a customer's contact to sign it (shown once)
- ``records verify``        recompute every record's SHA-256; exit 1 on any altered or
  missing record
- ``analysis build``        the service-operation analysis of a customer's month or quarter
- ``documents list|upload|download|delete``  the customer service file's documents
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import httpx

from diagctl.client import Api, Parser, ServerError, UsageError, emit, positive, table, when
from diagctl.inspections import _document_parser, _fetch, _save

__all__ = ["register"]

KINDS = ("inspection", "fault", "emergency", "repair", "routine", "upgrade", "analysis")
BUILT = ("emergency", "repair", "routine", "upgrade", "analysis")

_HEADERS = ("ID", "CUSTOMER", "KIND", "SUBJECT", "LANG", "FORMAT", "BYTES", "CREATED", "SIGNED")


def _row(r: dict[str, Any]) -> tuple[object, ...]:
    return (
        r["id"], r["customer"], r["kind"], r["subject"], r["lang"], r["format"], r["size"],
        when(r["created_at"]), "yes" if r["signed"] else "no",
    )  # fmt: skip


def cmd_list(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    params = {"customer": args.customer, "kind": args.kind, "subject": args.subject, "limit": args.limit}
    data = api.request("GET", "/api/v1/records", params)
    emit(args, data, lambda rows, out: table([_row(r) for r in rows], _HEADERS, out), out)


def _signoffs(rows: list[dict[str, Any]], out: TextIO) -> None:
    table(
        [
            (s["id"], s["contact"], s["state"], when(s["expires_at"]), when(s["signed_at"]), s["client_addr"])
            for s in rows
        ],
        ("SIGN-OFF", "CONTACT", "STATE", "EXPIRES", "SIGNED AT", "FROM"),
        out,
    )


def cmd_show(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("GET", f"/api/v1/records/{args.id}")

    def render(d: dict[str, Any], out: TextIO) -> None:
        table([_row(d)], _HEADERS, out)
        print(f"\nSHA-256 {d['sha256']}", file=out)
        if d["signoffs"]:
            print(file=out)
            _signoffs(d["signoffs"], out)
            for s in d["signoffs"]:
                if s["statement"]:
                    print(f"\n{s['contact']} signed: {s['statement']}", file=out)
        else:
            print(
                f"no sign-off yet (ask for one with: diagctl records sign {d['id']} --contact NAME)", file=out
            )

    emit(args, data, render, out)


def cmd_download(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    content, name = _fetch(api, f"/api/v1/records/{args.id}/content", {})
    _save(content, name, args.output, out)


def cmd_build(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    body = {
        "kind": args.kind,
        "customer": args.customer,
        "case": args.case,
        "period": args.period,
        "lang": args.lang,
        "format": args.report_format,
    }
    data = api.request("POST", "/api/v1/records", body={k: v for k, v in body.items() if v is not None})
    if args.output:
        content, name = _fetch(api, f"/api/v1/records/{data['id']}/content", {})
        _save(content, name, args.output, out)
        return
    print(
        f"record {data['id']}: {data['kind']} {data['subject']} ({data['lang']}, {data['format']})", file=out
    )
    print(f"download it with: diagctl records download {data['id']}", file=out)


def cmd_sign(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    body = {
        "contact": args.contact,
        "contact_email": args.email,
        "lang": args.lang,
        "expires_in_hours": args.hours,
    }
    data = api.request(
        "POST", f"/api/v1/records/{args.id}/signoff", body={k: v for k, v in body.items() if v is not None}
    )

    def render(d: dict[str, Any], out: TextIO) -> None:
        print(
            f"sign-off {d['id']}: {d['contact']} may sign record {d['record']} "
            f"until {when(d['expires_at'])}.",
            file=out,
        )
        print("Send this link to the contact; it is shown only now and works once:\n", file=out)
        url = d["url"] if d["url"].startswith("http") else api.server.rstrip("/") + d["url"]
        print(url, file=out)  # no public_url configured: where diagctl reaches the collector

    emit(args, data, render, out)


def cmd_verify(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("GET", "/api/v1/records/verify", {"customer": args.customer})

    def render(d: dict[str, Any], out: TextIO) -> None:
        print(f"{d['checked']} records and {d['signatures']} signatures checked", file=out)
        if d["problems"]:
            table(
                [
                    (p["record"], p["customer"], p["kind"], p["subject"], p["problem"], p["detail"])
                    for p in d["problems"]
                ],
                ("ID", "CUSTOMER", "KIND", "SUBJECT", "PROBLEM", "DETAIL"),
                out,
            )

    emit(args, data, render, out)
    if data["problems"]:
        raise ServerError(
            f"{len(data['problems'])} record(s) failed verification: restore them from a backup "
            "(the signed SHA-256 says which bytes are right), then run diagctl records verify again"
        )


def cmd_analysis(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    args.kind, args.case = "analysis", None
    cmd_build(api, args, out)


_DOC_HEADERS = ("ID", "CUSTOMER", "NAME", "TYPE", "BYTES", "SHA-256", "UPLOADED", "BY")


def _doc_row(d: dict[str, Any]) -> tuple[object, ...]:
    return (
        d["id"], d["customer"], d["name"], d["media_type"].split(";")[0], d["size"], d["sha256"][:12] + "…",
        when(d["uploaded_at"]), d["uploaded_by"],
    )  # fmt: skip


def cmd_documents_list(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("GET", f"/api/v1/customers/{args.customer}/documents", {"limit": args.limit})
    emit(args, data, lambda rows, out: table([_doc_row(d) for d in rows], _DOC_HEADERS, out), out)


def cmd_documents_upload(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    path = Path(args.file)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        response = api._client.post(
            f"/api/v1/customers/{args.customer}/documents",
            params={"name": args.name or path.name},
            content=content,
            headers={"Content-Type": "application/octet-stream"},
            timeout=120.0,
        )
    except httpx.HTTPError as exc:
        raise ServerError(
            f"request to {api.server} failed: {type(exc).__name__}; is the collector running?"
        ) from None
    if response.status_code >= 400:
        raise ServerError(f"{response.status_code}: {response.json().get('detail')}")
    emit(args, response.json(), lambda d, out: table([_doc_row(d)], _DOC_HEADERS, out), out)


def cmd_documents_download(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    content, name = _fetch(api, f"/api/v1/documents/{args.id}/content", {})
    _save(content, name, args.output, out)


def cmd_documents_delete(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    data = api.request("DELETE", f"/api/v1/documents/{args.id}")
    emit(
        args,
        data,
        lambda d, out: print(f"deleted document {d['id']} {d['name']!r} of {d['customer']}", file=out),
        out,
    )


def register(add: Callable[..., Any], sub: Any, common: Any) -> None:
    """Add ``diagctl records ...``; ``add(name, func, help, owner)`` as in build_parser."""
    records = sub.add_parser(
        "records", help="service records: list, build, sign-off, verify", parents=[common]
    )
    rsub = records.add_subparsers(dest="records_command", required=True, parser_class=Parser)
    p = add("list", cmd_list, "stored records, newest first", rsub)
    p.add_argument("--customer")
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--subject", help="a case id, run id or period")
    p.add_argument("--limit", type=positive, default=100)
    p = add("show", cmd_show, "one record with its sign-offs", rsub)
    p.add_argument("id", type=int)
    p = _document_parser(rsub, "download", cmd_download, "a record's bytes (-o FILE, -o - for stdout)")
    p.add_argument("id", type=int)
    p = _document_parser(rsub, "build", cmd_build, "build a service record from a case or a period")
    p.add_argument("kind", choices=BUILT)
    p.add_argument("--customer", help="routine, upgrade, analysis: whose record")
    p.add_argument("--case", help="emergency, repair: the case (C-acme-12); upgrade: optional")
    p.add_argument("--period", help="routine, upgrade, analysis: 2026-11 (a month) or 2026-Q4 (a quarter)")
    p.add_argument("--format", dest="report_format", choices=("html", "pdf", "json"), default="html")
    p.add_argument("--lang", choices=("en", "zh-CN"), default="en")
    p = add("sign", cmd_sign, "a one-time sign-off link for a customer's contact", rsub)
    p.add_argument("id", type=int)
    p.add_argument("--contact", required=True, help="the contact's name, as the statement shows it")
    p.add_argument("--email")
    p.add_argument("--lang", choices=("en", "zh-CN"), default="en")
    p.add_argument("--hours", type=float, help="how long the link works (default 168, at most 720)")
    p = add("verify", cmd_verify, "recompute every record's SHA-256; exit 1 on altered or missing", rsub)
    p.add_argument("--customer")
    analysis = sub.add_parser(
        "analysis", help="service-operation analysis (服务运行分析报告)", parents=[common]
    )
    asub = analysis.add_subparsers(dest="analysis_command", required=True, parser_class=Parser)
    p = _document_parser(asub, "build", cmd_analysis, "analyse a customer's month or quarter")
    p.add_argument("--customer", required=True)
    p.add_argument("--period", required=True, help="2026-11 (a month) or 2026-Q4 (a quarter)")
    p.add_argument("--format", dest="report_format", choices=("html", "pdf", "json"), default="html")
    p.add_argument("--lang", choices=("en", "zh-CN"), default="en")
    documents = sub.add_parser("documents", help="the customer service file's documents", parents=[common])
    dsub = documents.add_subparsers(dest="documents_command", required=True, parser_class=Parser)
    p = add("list", cmd_documents_list, "a customer's documents, newest first", dsub)
    p.add_argument("--customer", required=True)
    p.add_argument("--limit", type=positive, default=100)
    p = add("upload", cmd_documents_upload, "upload a PDF, image, Office file or text file", dsub)
    p.add_argument("file")
    p.add_argument("--customer", required=True)
    p.add_argument("--name", help="the name to keep (default: the file's)")
    p = _document_parser(dsub, "download", cmd_documents_download, "a document's bytes (-o FILE, -o -)")
    p.add_argument("id", type=int)
    p = add("delete", cmd_documents_delete, "delete a document", dsub)
    p.add_argument("id", type=int)
