"""Thin typer stage commands: read params, call the library, write outputs atomically."""
