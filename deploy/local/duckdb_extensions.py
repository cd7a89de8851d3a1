"""The DuckDB extensions the BigQuery emulator loads, placed from their PyPI packages.

The emulator runs ``INSTALL spatial`` at start, which would download the extension; with the
files already in DuckDB's extension folder under the emulator's HOME, it needs no network.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from deploy.local.errors import StackError

DUCKDB_EXTENSIONS = ("spatial", "avro")


def duckdb_extensions_dir(home: Path) -> Path:
    """Where DuckDB looks for this version's extensions when HOME is ``home``."""
    import duckdb

    version = "v" + duckdb.__version__
    return home / ".duckdb" / "extensions" / version / "linux_amd64"


def place_duckdb_extensions(home: Path) -> None:
    """Copy each extension from its ``duckdb-extension-*`` package into ``home``'s DuckDB."""
    import duckdb

    target = duckdb_extensions_dir(home)
    target.mkdir(parents=True, exist_ok=True)
    version = "v" + duckdb.__version__
    for name in DUCKDB_EXTENSIONS:
        package = __import__(f"duckdb_extension_{name}")
        package_dir = Path(str(package.__file__)).parent
        source = package_dir / "extensions" / version / f"{name}.duckdb_extension"
        if not source.exists():
            raise StackError(
                f"{source} is missing: duckdb-extension-{name} does not match duckdb "
                f"{duckdb.__version__}; run `make setup` to reinstall the locked packages"
            )
        destination = target / source.name
        if not destination.exists() or destination.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, destination)
