"""veerunbook: an executable incident-response runbook."""

import sys

__version__ = "0.1.0"

# jsonschema (4.26, as installed here) imports rfc3987_syntax whenever it is
# installed, and that module builds its Lark grammar at import time: about 1.5 s on a
# 2-core machine, paid by every process that imports nbformat, papermill or nbclient.
# jupyterlab's dependencies install it. Only the "iri" and "iri-reference" format
# checks use it, and no notebook schema declares those formats. An entry of None makes
# the import raise ImportError, so jsonschema skips those two checks. A process that
# imported jsonschema before veerunbook keeps what it has.
if "jsonschema" not in sys.modules:
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
