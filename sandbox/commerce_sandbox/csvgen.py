"""Writing Next Commerce CSV files: header spelling, streaming, byte-exactness.

Files are streamed row by row into a temporary file (never built in memory), so a
benchmark export of a million rows costs disk, not RAM. The writer is the stdlib
``csv`` module with ``QUOTE_MINIMAL`` and ``\\r\\n`` line ends, as Django/Python
exporters produce: cells with commas, quotes or newlines are quoted, quotes doubled.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Mapping

from commerce_sandbox.data_nextcommerce import METADATA_COLUMNS, column_names

#: Words title-cased as acronyms (``id`` -> ``ID``), as human-made headers do.
ACRONYMS = {"id": "ID", "ip": "IP", "url": "URL", "sku": "SKU", "utm": "UTM"}


def title_header(name: str) -> str:
    """``total_incl_tax`` -> ``Total Incl Tax``; ``order_number`` -> ``Order Number``.

    Names that are already not snake_case (store metadata columns such as
    ``Gift Message``) are left as the store spelled them.
    """
    if name in METADATA_COLUMNS or name != name.lower() or " " in name:
        return name
    return " ".join(ACRONYMS.get(w, w.capitalize()) for w in name.split("_"))


def normalize_header(header: str) -> str:
    """The snake_case property a header stands for (what a tap is expected to do).

    ``Total Incl Tax`` -> ``total_incl_tax``, ``ID`` -> ``id``, ``utm_campaign`` stays.
    Truth rows are keyed by these names.
    """
    text = re.sub(r"[^0-9a-zA-Z]+", "_", header.strip()).strip("_")
    return text.lower()


def headers_for(export_type: str, style: str, window_names: Mapping[str, str] | None = None) -> list[str]:
    """File headers of one type in ``snake`` or ``title`` style (window column renamed
    as ``window_names`` says, see ``SandboxConfig.window_column_names``)."""
    names = column_names(export_type, window_names)
    if style == "title":
        return [title_header(n) for n in names]
    return names


def write_csv(path: str, headers: list[str], lines: Iterable[str]) -> int:
    """Stream pre-escaped CSV ``lines`` under a header row to ``path``; return row count.

    Written under a temporary name and renamed, so a half-written file is never
    served.
    """
    tmp = path + ".part"
    count = 0
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n").writerow(headers)
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 5000:
                fh.write("".join(batch))
                count += len(batch)
                batch.clear()
        fh.write("".join(batch))
        count += len(batch)
    os.replace(tmp, path)
    return count
