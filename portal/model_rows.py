"""Hot reads written once as SQL text, their rows turned into model instances as the ORM would.

The ORM compiles a queryset's SQL anew on every evaluation; on a path taken for every request or job, that
compiling costs more than the query (issue 13). `ModelColumns` gives a model's column list for a SELECT, once,
and builds instances from the selected values through the same converters the ORM applies
(SQLCompiler.apply_converters) and Model.from_db, so callers get what the equivalent queryset returns.
"""

from __future__ import annotations

from django.db import connections
from django.db.models import Model


class ModelColumns:
    """The concrete columns of `model` under a table alias, for the database `using`."""

    def __init__(self, model: type[Model], table_alias: str, *, using: str = "default"):
        connection = connections[using]
        quote = connection.ops.quote_name
        self.model, self.using = model, using
        cols = [field.get_col(table_alias) for field in model._meta.concrete_fields]
        self.sql = ", ".join(f"{quote(col.alias)}.{quote(col.target.column)}" for col in cols)
        self.attnames = [field.attname for field in model._meta.concrete_fields]
        converters = [
            (i, connection.ops.get_db_converters(col) + col.get_db_converters(connection), col)
            for i, col in enumerate(cols)
        ]
        self._converters = [(i, funcs, col) for i, funcs, col in converters if funcs]

    def __len__(self) -> int:
        return len(self.attnames)

    def instance(self, values) -> Model:
        """The instance for one row's values of these columns (in this order)."""
        values = list(values)
        if self._converters:
            connection = connections[self.using]
            for i, funcs, col in self._converters:
                for convert in funcs:
                    values[i] = convert(values[i], col, connection)
        return self.model.from_db(self.using, self.attnames, values)
