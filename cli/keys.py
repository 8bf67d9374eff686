"""``auditstream keys export | rotate``: the checkpoint signing keys."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


@click.group("keys")
def keys() -> None:
    """The Ed25519 keys that sign checkpoints (AUDITSTREAM_HOME/keys)."""


@keys.command("export")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
def keys_export(out: Path | None) -> None:
    """Print every public key (current and retired) as PEM, for auditors."""
    from auditstream.cli.main import _settings
    from auditstream.integrity.keys import KeyFileError, KeyStore

    store = KeyStore.at_home(_settings().home)
    try:
        store.current()  # generated on first use
        text = store.export()
    except (KeyFileError, OSError) as exc:
        err.print("error:", escape(str(exc)))
        sys.exit(1)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text)
        console.print(f"wrote {escape(str(out))}")


@keys.command("rotate")
def keys_rotate() -> None:
    """Make a new signing key current; the rotation is a checkpoint signed by the old key,
    then the old private key is removed. A running sink signs with the new key from its next
    checkpoint on."""
    from auditstream.cli.main import _settings
    from auditstream.integrity.keys import KeyFileError
    from auditstream.sinks.service import recorder

    settings = _settings()
    try:
        doc = recorder(settings).rotate()
    except (KeyFileError, OSError) as exc:
        err.print("error:", escape(str(exc)))
        sys.exit(1)
    console.print(f"signing key {doc['key_id']} -> {doc['new_key_id']} (rotation recorded)")
    console.print(
        f"the private key {doc['key_id']} was removed; checkpoints it signs dated after "
        f"{doc['at']} are rejected. Copies of it in backups still sign earlier-dated ones: "
        "destroy them."
    )
