"""The REST API (FastAPI) and the served console."""
