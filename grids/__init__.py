"""Model families and their parameter grids: the built-in sets and users' grids files."""

from grids._builtin import BUILTIN, builtin_families, preprocessor
from grids._load import Grids, GridsError, is_grids_file_module, is_user_module, load_grids, validate_families

__all__ = [
    "BUILTIN",
    "Grids",
    "GridsError",
    "builtin_families",
    "is_grids_file_module",
    "is_user_module",
    "load_grids",
    "preprocessor",
    "validate_families",
]
