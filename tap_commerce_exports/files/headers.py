"""Turn CSV header cells into snake_case property names.

Why: Next Commerce does not publish its export column names; a store's file may say
``total_incl_tax``, ``Total Incl Tax`` or ``totalInclTax``. All three must land on the
same schema property, so every header goes through one normalization.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# camelCase boundaries: "dateJoined" -> "date_Joined", "HTTPStatus" -> "HTTP_Status".
_CAMEL_LOWER_UPPER = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_CAMEL_ACRONYM = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")
# Anything that is not a letter/digit (in any script) becomes a separator.
_NON_WORD = re.compile(r"[\W_]+")


def normalize_header(name: str) -> str:
    """Map one header cell to a property name.

    ``'Total Incl Tax' -> 'total_incl_tax'``, ``'dateJoined' -> 'date_joined'``,
    ``'\\ufeffid' -> 'id'``, ``'Order #' -> 'order'``. Non-alphanumerics become ``_``,
    runs collapse, ends are stripped, letters are lower-cased; unicode letters are kept.
    The result may be empty (``'#'``); :func:`normalize_headers` names such columns.
    Idempotent: normalizing a normalized name returns it unchanged.
    """
    text = name.replace("\ufeff", "")
    text = _CAMEL_LOWER_UPPER.sub("_", text)
    text = _CAMEL_ACRONYM.sub("_", text)
    # Lower-case BEFORE replacing separators: some letters lower-case into a letter plus
    # a combining mark ('İ' -> 'i̇'), which must become '_' now, not on a second pass.
    return _NON_WORD.sub("_", text.lower()).strip("_")


def normalize_headers(names: Sequence[str]) -> list[str]:
    """Normalize a whole header row into unique, non-empty property names.

    Empty results become ``column_<1-based index>``; repeats get ``_2``, ``_3``... so no
    column is ever silently merged into another (and none is dropped).
    """
    result: list[str] = []
    taken: set[str] = set()
    for index, raw in enumerate(names, start=1):
        base = normalize_header(raw) or f"column_{index}"
        name = base
        suffix = 2
        while name in taken:
            name = f"{base}_{suffix}"
            suffix += 1
        taken.add(name)
        result.append(name)
    return result
