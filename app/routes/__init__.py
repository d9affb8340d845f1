"""Routes, one module per area, each exporting a flat `routes` list."""
