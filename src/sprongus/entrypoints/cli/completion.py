"""`sprongus completion bash|zsh|fish`, and the scopes and key names that SCOPE, KEY and PREFIX complete to.

The scripts are Click's (click.shell_completion: the same protocol, `_SPRONGUS_COMPLETE=bash_complete` and friends),
with two changes to the bash and zsh ones so that scopes complete well: bash splits words at `:` (COMP_WORDBREAKS),
which would hand Click `project`, `:` and `acme` for `project:acme`, so the bash script re-splits the line at blanks
and trims what bash already has before the last `:`; and neither shell adds a space after a half-typed `project:`.

Names come from a read-only look at the local SQLite vault: key names and scopes are not secret (`secrets list`
shows them), and nothing else is read. The container is not used: it would create a vault and a master key where
there is none, and could wait for (or ask at) an OS keychain, none of which a keypress may do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

PROG = "sprongus"
COMPLETE_VAR = "_SPRONGUS_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
SCOPE_STARTS = ("user:", "project:", "system")
MAX_NAMES = 500  # a screenful is what a shell shows; a vault of 100,000 keys must not stall the keypress

# Click's bash script, reading the words from COMP_LINE instead of COMP_WORDS (see the module docstring).
_BASH = r"""%(complete_func)s() {
    local IFS=$'\n'
    local response completion type value line cur colon_prefix=""
    local -a words
    line="${COMP_LINE:0:COMP_POINT}"
    IFS=$' \t\n' read -r -a words <<< "$line"
    [[ $line == *[[:blank:]] ]] && words+=("")
    cur="${words[${#words[@]}-1]}"
    [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]] && colon_prefix="${cur%%"${cur##*:}"}"

    response=$(env COMP_WORDS="${words[*]}" COMP_CWORD=$(( ${#words[@]} - 1 )) %(complete_var)s=bash_complete $1)

    for completion in $response; do
        IFS=',' read -r type value <<< "$completion"

        if [[ $type == 'dir' ]]; then
            COMPREPLY=()
            compopt -o dirnames
        elif [[ $type == 'file' ]]; then
            COMPREPLY=()
            compopt -o default
        elif [[ $type == 'plain' ]]; then
            COMPREPLY+=("${value#"$colon_prefix"}")
        fi
    done

    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *[:.] ]]; then
        compopt -o nospace
    fi

    return 0
}

%(complete_func)s_setup() {
    complete -o nosort -F %(complete_func)s %(prog_name)s
}

%(complete_func)s_setup;
"""

# Click's zsh script; a value ending in `:` or `.` (`project:`, a key prefix) gets no space after it.
_ZSH = r"""#compdef %(prog_name)s

%(complete_func)s() {
    local -a completions
    local -a completions_open
    local -a completions_with_descriptions
    local -a response
    (( ! $+commands[%(prog_name)s] )) && return 1

    response=("${(@f)$(env COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT-1)) \
        %(complete_var)s=zsh_complete %(prog_name)s)}")

    for type key descr in ${response}; do
        if [[ "$type" == "plain" ]]; then
            if [[ "$descr" != "_" ]]; then
                completions_with_descriptions+=("$key":"$descr")
            elif [[ "$key" == *[:.] ]]; then
                completions_open+=("$key")
            else
                completions+=("$key")
            fi
        elif [[ "$type" == "dir" ]]; then
            _path_files -/
        elif [[ "$type" == "file" ]]; then
            _path_files -f
        fi
    done

    if [ -n "$completions_with_descriptions" ]; then
        _describe -V unsorted completions_with_descriptions -U
    fi

    if [ -n "$completions" ]; then
        compadd -U -V unsorted -a completions
    fi

    if [ -n "$completions_open" ]; then
        compadd -S '' -U -V unsorted -a completions_open
    fi
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    # autoload from fpath, call function directly
    %(complete_func)s "$@"
else
    # eval/source/. command, register function for later
    compdef %(complete_func)s %(prog_name)s
fi
"""


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion_command(shell: str) -> None:
    """Print the shell completion script for SHELL (bash 4.4+, zsh or fish).

    \b
    bash: add to ~/.bashrc:   eval "$(sprongus completion bash)"
    zsh:  add to ~/.zshrc:    eval "$(sprongus completion zsh)"   (after compinit)
    fish: run once:           sprongus completion fish > ~/.config/fish/completions/sprongus.fish

    Commands, options, scopes and the local vault's key names complete; values never do.
    """
    click.echo(completion_script(shell), nl=False)


def completion_script(shell: str) -> str:
    from click.shell_completion import get_completion_class  # only here: no other command pays for it

    cls = get_completion_class(shell)
    if cls is None:  # not reached: SHELL is a Choice of the shells Click ships
        raise click.BadParameter(f"no completion for {shell}")
    # The root command is only consulted when completing, never to write the script.
    completer = cls(click.Command(PROG), {}, PROG, COMPLETE_VAR)
    template = {"bash": _BASH, "zsh": _ZSH}.get(shell)
    if template is None:
        return completer.source()
    return template % completer.source_vars()


def scope_candidates(ctx: click.Context, incomplete: str) -> list[str]:
    """`user:`, `project:`, `system`, then the local vault's scopes, that start with what was typed."""
    # A typed-out `project:` is not offered back (bash would show an empty choice); a typed-out `system` is, to end it.
    starts = [text for text in SCOPE_STARTS if text.startswith(incomplete) and not (text == incomplete != "system")]
    found = _query(ctx, "SELECT DISTINCT owner_type, owner_id FROM secret_kv ORDER BY owner_type, owner_id LIMIT ?",
                   (MAX_NAMES,))
    scopes = [f"{kind}:{owner}" if owner is not None else kind for kind, owner in found
              if _is_name_text(f"{kind}{owner or ''}".replace("@", ""))]  # nothing a shell could take for more words
    return [*starts, *(s for s in scopes if s.startswith(incomplete) and s not in starts)]


def key_candidates(ctx: click.Context, incomplete: str) -> list[str]:
    """The key names of the scope already on the command line that start with what was typed."""
    return _key_names(ctx, incomplete, any_scope=False)


def prefix_candidates(ctx: click.Context, incomplete: str) -> list[str]:
    """Key-name prefixes: every dotted head (`notion.`) and name that starts with what was typed."""
    heads: set[str] = set()
    # Click cannot tell an option's value-to-be from its scope (`list project:acme --prefix <TAB>` leaves the scope
    # unparsed), so without a scope the names of every scope are offered.
    for key in _key_names(ctx, incomplete, any_scope=True):
        parts = key.split(".")
        heads.update(".".join(parts[:end]) + "." for end in range(1, len(parts)))
        heads.add(key)
    return sorted(head for head in heads if head.startswith(incomplete))


def _key_names(ctx: click.Context, incomplete: str, any_scope: bool) -> list[str]:
    from sprongus.domain.scope import Scope

    if not _is_name_text(incomplete):
        return []
    scope = ctx.params.get("scope")
    # GLOB matches case-sensitively, as key names compare; `incomplete` holds no GLOB metacharacter (checked above).
    if isinstance(scope, Scope):
        rows = _query(ctx, "SELECT key_name FROM secret_kv WHERE owner_type = ? AND owner_id IS ? AND key_name GLOB ? "
                      "ORDER BY key_name LIMIT ?",
                      (scope.owner_type.value, scope.owner_id, incomplete + "*", MAX_NAMES))
    elif any_scope:
        rows = _query(ctx, "SELECT DISTINCT key_name FROM secret_kv WHERE key_name GLOB ? ORDER BY key_name LIMIT ?",
                      (incomplete + "*", MAX_NAMES))
    else:
        return []
    return [key for (key,) in rows if isinstance(key, str) and _is_name_text(key)]  # never a newline or a blank


def _is_name_text(text: str) -> bool:
    return all(char.isascii() and (char.isalnum() or char in "._-") for char in text)


def _query(ctx: click.Context, sql: str, args: tuple[object, ...]) -> list[tuple[str, ...]]:
    """Rows from the local vault, or none: without a vault, in remote mode, on another database, on any error."""
    try:
        path = _local_vault(ctx)
        if path is None:
            return []
        db = _open_read_only(path)
        try:
            return list(db.execute(sql, args).fetchall())
        finally:
            db.close()
    except Exception:  # a completion must never print a traceback into the user's command line
        return []


def _local_vault(ctx: click.Context) -> Path | None:
    import os
    from pathlib import Path
    from urllib.parse import unquote

    from sprongus.entrypoints.cli.state import CliState
    from sprongus.entrypoints.profiles import database_url

    state = ctx.find_object(CliState)  # `--remote` earlier on the line has set it (Click runs callbacks)
    settings = state.get_settings() if state is not None else None
    if state is None or settings is None or state.remote or settings.remote:
        return None  # remote names are the API's to tell, through a token: not worth a request per keypress
    url = database_url(settings)
    if not url.startswith("sqlite:///"):
        return None
    # Resolved: SQLite keeps the WAL files beside a symlinked vault's target, not beside the link.
    path = Path(unquote(url[len("sqlite:///"):])).expanduser().resolve()
    if not path.is_file():
        return None
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        # A vault others may access is refused by every command until it is made private: do not read it either;
        # nor one of another user's (a symlink planted under the vault's name, or root completing in their home).
        if file.exists() and (file.stat().st_mode & 0o077 or (uid is not None and file.stat().st_uid != uid)):
            return None
    return path


def _open_read_only(path: Path) -> sqlite3.Connection:
    """Open without writing anything: with no WAL files beside the vault (no one has it open), `immutable` keeps
    SQLite from creating them (a read-only connection would, and leave them behind); with them, a plain read-only
    connection sees what a running writer committed."""
    import sqlite3

    live = path.with_name(path.name + "-wal").exists() and path.with_name(path.name + "-shm").exists()
    uri = path.absolute().as_uri() + ("?mode=ro" if live else "?mode=ro&immutable=1")
    db = sqlite3.connect(uri, uri=True, timeout=0.5)
    db.execute("PRAGMA query_only = ON")
    return db
