"""In-memory manifest dicts to a validated inventory (``kubefence.Cluster.from_objects``).

Why this module exists: users of the Python API build manifests in code (or read them with their
own YAML loader) and deserve exactly the validation files get. Their objects have no file or
line, so problems name the file ``<objects>`` and the object's position (``document N``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubefence._collector import collector_paused
from kubefence.api import Document, Inventory, build_inventory

__all__ = ["OBJECTS_FILE", "inventory_from_objects"]

OBJECTS_FILE = "<objects>"


def inventory_from_objects(
    objects: Iterable[Mapping[str, Any]], *, default_namespace: str = "default"
) -> Inventory:
    """Validate and default manifest dicts (as ``yaml.safe_load`` gives them).

    Raises ``kubefence.ValidationError`` listing every problem; nothing is half-loaded.
    """
    with collector_paused():
        documents = [
            Document(content=obj, file=OBJECTS_FILE, line=None, index=index)
            for index, obj in enumerate(objects)
        ]
        return build_inventory(documents, default_namespace=default_namespace)
