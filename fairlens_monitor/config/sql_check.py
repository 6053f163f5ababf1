"""Check ``source.query`` with a SQL parser: one read-only ``SELECT``, ready to nest.

Part of the config boundary (:mod:`fairlens_monitor.config.source`). The query is parsed with
sqlglot in the source database's dialect, so a ``;`` or ``--`` inside a string literal is
text, not a statement end or a comment. It must be exactly one statement, a query
(``SELECT``, ``WITH … SELECT``, ``UNION`` …), with no data-changing part anywhere (an
``INSERT`` in a CTE, ``SELECT … INTO``). The text kept is the user's own, from its first
token to its last, so comments around it and a trailing ``;`` are gone and the query can be
nested as a subquery (a trailing ``-- comment`` would otherwise swallow the closing
parenthesis). Pure.
"""

from __future__ import annotations

from sqlglot import exp, parse
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import TokenType

from fairlens_monitor.errors import ConfigError

KEY = "source.query"
# SQLAlchemy back-end name -> sqlglot dialect (others are parsed in the generic dialect)
DIALECTS = {
    "postgresql": "postgres",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mssql": "tsql",
    "oracle": "oracle",
}
WRITES: tuple[type[exp.Expression], ...] = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Into,
    exp.Command,
    exp.TruncateTable,
)


def dialect_of(url: str) -> str | None:
    """The sqlglot dialect for a SQLAlchemy URL (None: sqlglot's generic SQL)."""
    backend = url.split(":", 1)[0].split("+", 1)[0].lower()
    return DIALECTS.get(backend)


def check_query(query: object, url: str) -> str:
    """Validate a source query and return its text trimmed to the statement itself.

    Args:
        query: the configured value.
        url: the source database URL (its back end picks the SQL dialect).

    Returns:
        The query from its first token to its last, without surrounding comments or ``;``.

    Raises:
        ConfigError: not a string, not parseable, more or fewer than one statement, not a
            query, or a query with a data-changing part.
    """
    if not isinstance(query, str) or not query.strip():
        raise ConfigError(KEY, "expected one SELECT (or WITH … SELECT) statement")
    dialect = dialect_of(url)
    try:
        statements = [
            s
            for s in parse(query, read=dialect)  # a lone comment is no statement
            if s is not None and not isinstance(s, exp.Semicolon)
        ]
        tokens = Dialect.get_or_raise(dialect).tokenize(query)
    except SqlglotError as exc:
        raise ConfigError(
            KEY,
            f"cannot be parsed as SQL ({type(exc).__name__}); expected "
            "one SELECT statement; a view (source.table) takes any SQL",
        ) from None
    if len(statements) != 1:
        raise ConfigError(
            KEY,
            f"expected a single statement, found {len(statements)}; remove the ';' between them",
        )
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise ConfigError(
            KEY, f"expected one SELECT (or WITH … SELECT) statement, got {statement.key.upper()}"
        )
    write = next(statement.find_all(*WRITES), None)
    if write is not None:
        raise ConfigError(KEY, f"a source query only reads; it holds {write.key.upper()}")
    body = [t for t in tokens if t.token_type != TokenType.SEMICOLON]
    return query[body[0].start : body[-1].end + 1]
