"""``auditstream dlq list|show|replay``: dead letters, read from the dead-letter topic.

Everything a dead letter holds is data: it is printed as plain text (``cli.render``), never
as markup. The ``audit_dead_letters`` table keeps them past the topic's retention
(``auditstream sql``).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any, NoReturn

import click
import orjson
from rich.console import Console
from rich.text import Text

from auditstream.cli.render import table, visible
from auditstream.ops import dlq as ops_dlq
from auditstream.ops.dlq import DeadLetter, DlqError, Selection

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _selection(reason: str | None, since: str | None, ids: tuple[str, ...] = ()) -> Selection:
    try:
        since_ms = None if since is None else ops_dlq.parse_since(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    return Selection(reason=reason, since_ms=since_ms, ids=ids)


def _fail(exc: Exception) -> NoReturn:
    err.print(Text(f"dlq: {exc}"))
    sys.exit(1)


def _short(value: bytes | None, limit: int) -> str:
    if value is None:
        return ""
    text = visible(value.decode(errors="replace"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_json(letter: DeadLetter, replay: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": letter.id,
        "position": letter.position,
        "failed_at": letter.failed_at,
        "reason": letter.reason,
        "detail": letter.context.get("detail", ""),
        "source": letter.source,
        "key": (letter.key or b"").decode(errors="replace"),
        "bytes": len(letter.value or b""),
        "truncated": letter.truncated,
        "replay_of": letter.replay_of,
        "replayed": replay,
    }


@click.group()
def dlq() -> None:
    """Dead letters: why messages were refused, their payloads, and replaying them."""


@dlq.command("list")
@click.option("--reason", help="Only this reason (e.g. in_future, invalid_json).")
@click.option("--since", help="Only dead letters since then: 30m, 2h, 7d, or ISO 8601.")
@click.option("--limit", default=50, show_default=True, help="Rows to show (newest).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per dead letter.")
def dlq_list(reason: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """List dead letters, newest last, with reasons counted."""
    from auditstream.cli.main import _settings

    settings = _settings()
    try:
        letters = ops_dlq.read_dead_letters(settings, _selection(reason, since))
        ledger = ops_dlq.read_ledger(settings)
    except DlqError as exc:
        _fail(exc)
    if as_json:
        for letter in letters:
            console.file.write(json.dumps(_as_json(letter, ledger.get(letter.position))) + "\n")
        return
    shown = letters[-limit:] if limit > 0 else letters
    rows = []
    for d in shown:
        replay = ledger.get(d.position)
        state = f"→ {replay['replayed_to']}" if replay else ("truncated" if d.truncated else "")
        if d.replay_of:
            state = f"replay of {d.replay_of}" + (f"; {state}" if state else "")
        rows.append(
            [
                d.id,
                d.failed_at,
                d.reason,
                _short(d.context.get("detail", "").encode(), 60),
                d.source,
                _short(d.key, 24),
                len(d.value or b""),
                state,
            ]
        )
    columns = ["id", "failed at", "reason", "detail", "from", "key", "bytes", "replayed"]
    title = f"dead letters on {settings.topics.dead_letter}"
    console.print(table(title, columns, rows, [False] * 6 + [True, False]))
    counts = Counter(d.reason for d in letters)
    summary = ", ".join(f"{r} {n}" for r, n in counts.most_common()) or "none"
    more = f" (showing the last {len(shown)})" if len(shown) < len(letters) else ""
    console.print(Text(f"{len(letters)} dead letters{more}; by reason: {summary}"))


@dlq.command("show")
@click.argument("ident", metavar="ID")
def dlq_show(ident: str) -> None:
    """One dead letter (ID as listed: partition:offset): context, headers, payload."""
    from auditstream.cli.main import _settings

    settings = _settings()
    try:
        letter = ops_dlq.find(settings, ident)
        ledger = ops_dlq.read_ledger(settings)
    except DlqError as exc:
        _fail(exc)
    if letter is None:
        err.print(Text(f"dlq: no dead letter {ident} on {settings.topics.dead_letter}"))
        sys.exit(1)
    doc = _as_json(letter, ledger.get(letter.position))
    rows = [[k, "" if v is None else v] for k, v in doc.items() if k != "detail"]
    rows.append(["detail", letter.context.get("detail", "")])
    console.print(table(f"dead letter {letter.id}", ["field", "value"], rows))
    headers = [[k, v.decode(errors="replace")] for k, v in letter.headers]
    console.print(table("headers", ["header", "value"], headers))
    value = letter.value or b""
    try:
        text = orjson.dumps(orjson.loads(value), option=orjson.OPT_INDENT_2).decode()
        lines = [visible(line) for line in text.splitlines()]
    except orjson.JSONDecodeError:
        lines = [visible(value.decode(errors="replace"))]
    console.print(Text("payload:", style="bold"))
    console.print(Text("\n".join(lines)))


@dlq.command("replay")
@click.option("--reason", help="Only dead letters with this reason.")
@click.option("--since", help="Only dead letters since then: 30m, 2h, 7d, or ISO 8601.")
@click.option("--id", "ids", multiple=True, help="Only this dead letter (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Every dead letter not replayed yet.")
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; send nothing.")
def dlq_replay(
    reason: str | None, since: str | None, ids: tuple[str, ...], everything: bool, dry_run: bool
) -> None:
    """Send dead letters back to the raw topic, once their cause is fixed.

    Each dead letter is replayed at most once (the replay ledger, written in the same
    transaction), with headers naming the dead letter it came from; an event already stored
    is recorded as a repeat, not stored again. Name what to replay (--reason, --since, --id)
    or pass --all.
    """
    from auditstream.cli.main import _settings

    if not (reason or since or ids or everything):
        raise click.UsageError("say what to replay: --reason, --since, --id, or --all")
    settings = _settings()
    try:
        report = ops_dlq.replay(settings, _selection(reason, since, ids), dry_run=dry_run)
    except DlqError as exc:
        _fail(exc)
    verb = "would replay" if dry_run else "replayed"
    reasons = Counter(d.reason for d, _, _ in report.replayed)
    detail = ", ".join(f"{r} {n}" for r, n in reasons.most_common())
    console.print(
        Text(
            f"{verb} {len(report.replayed)} dead letters to {settings.topics.raw}"
            + (f" ({detail})" if detail else "")
        )
    )
    if report.already:
        console.print(Text(f"skipped {len(report.already)} replayed before (not sent again)"))
    if report.truncated:
        ids_cut = ", ".join(d.id for d in report.truncated[:10])
        console.print(
            Text(
                f"skipped {len(report.truncated)} truncated dead letters (their original bytes "
                f"are not on the topic): {ids_cut}"
            )
        )
    if not dry_run and report.replayed:
        console.print(
            Text("see where they end: `auditstream reconcile --wait 30`, `auditstream dlq list`")
        )
