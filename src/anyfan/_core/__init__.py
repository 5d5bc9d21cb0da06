"""The engine: sans-I/O logic plus a thin anyio scheduling layer. Imports nothing above it."""
