"""Where manifests come from: files, directories and stdin (later a live cluster).

The contract is in two modules, imported by name so that loading in-memory objects does not
import the YAML reader: ``kubefence.sources.files`` (``load_paths``, ``read_documents``,
``expand_paths``, ``STDIN``) and ``kubefence.sources.objects`` (``inventory_from_objects``,
``OBJECTS_FILE``). The package itself exports nothing.
"""

from __future__ import annotations

__all__: list[str] = []
